"""Speaker calibration: a :class:`Voice` is a speaker's everyday voice as the model sees it, and
:func:`relative` puts any of their clips' features in relation to it.

An emotion is a departure from a speaker's own everyday voice, so the calibrated model reads
each clip's features beside their difference from the speaker's neutral reference (the mean
features of a few seconds of their unemotional speech). A :class:`Voice` holds that mean and no
audio; it serialises to JSON and back and names the feature set it belongs to, so a voice made
with one model is never applied to another's features.

Without a reference, :func:`estimate_baseline` takes the mean of a session's own clips, and
declines (judging without adaptation) when the session sounds dominated by one emotion, so that
an angry call is never taken for the speaker's normal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = [
    "Voice",
    "CALIBRATION_MODES",
    "adapted",
    "relative",
    "feature_fingerprint",
    "estimate_baseline",
    "dominant_share",
]

CALIBRATION_MODES = ("concat", "offset")  # the calibrated model's input: [x, x - ref] or x - ref
VOICE_FORMAT = 1
ADAPTATIONS = ("reference", "same-speaker")
MIN_SESSION_CLIPS = 8  # fewer clips (about 10 s of speech) cannot show a speaker's range
MAX_DOMINANT_SHARE = 0.5  # a session more than half of one verdict is not adapted to (set beforehand)


def feature_fingerprint(feature_config: dict) -> str:
    """A short digest of a feature set's settings: voices carry it and are checked against it."""
    return hashlib.sha256(json.dumps(feature_config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Voice:
    """A speaker's baseline: the mean features of their neutral speech. Small, and no audio.

    ``clips`` and ``seconds`` say how much speech it was built from; ``source`` is
    ``"reference"`` (recordings the speaker gave) or ``"same-speaker"`` (estimated from the
    recordings being judged).
    """

    reference: np.ndarray  # (n_features,) float32
    clips: int
    seconds: float
    features: str  # feature_fingerprint of the feature set
    source: str = "reference"

    def __post_init__(self) -> None:
        reference = np.asarray(self.reference, np.float32)
        if reference.ndim != 1 or not reference.size or not np.all(np.isfinite(reference)):
            raise ParameterError("A voice's reference must be a non-empty vector of finite numbers.")
        if self.source not in ADAPTATIONS:
            raise ParameterError(f"A voice's source must be one of {list(ADAPTATIONS)}, not {self.source!r}.")
        if self.clips < 1 or self.seconds <= 0:
            raise ParameterError("A voice is built from at least one clip with speech.")
        object.__setattr__(self, "reference", reference)

    def to_dict(self) -> dict:
        return {
            "format": VOICE_FORMAT,
            "features": self.features,
            "source": self.source,
            "clips": self.clips,
            "seconds": round(self.seconds, 3),
            "reference": [float(v) for v in self.reference],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Voice:
        if not isinstance(data, dict) or data.get("format") != VOICE_FORMAT:
            raise ParameterError("This is not a saved voice of this version; calibrate again.")
        try:
            return cls(
                reference=np.asarray(data["reference"], np.float32),
                clips=int(data["clips"]),
                seconds=float(data["seconds"]),
                features=str(data["features"]),
                source=str(data.get("source", "reference")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(f"The saved voice is incomplete or damaged ({e}); calibrate again.") from None

    @classmethod
    def from_json(cls, text: str) -> Voice:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError:
            raise ParameterError("The saved voice is not valid JSON; calibrate again.") from None


def adapted(voice: Voice | None) -> str | None:
    """What a verdict's ``"adapted"`` field says: ``"reference"``, ``"same-speaker"`` or ``None``."""
    return None if voice is None else voice.source


def relative(features: np.ndarray, reference: np.ndarray, mode: str) -> np.ndarray:
    """Features ``(b, n)`` in relation to a speaker's ``reference`` ``(n,)``: ``(b, 2 n)`` for
    ``"concat"`` (the features and their difference from the reference), ``(b, n)`` for ``"offset"``."""
    if mode == "offset":
        return features - reference
    if mode == "concat":
        return np.concatenate([features, features - reference], axis=1)
    raise ParameterError(f"Unknown calibration mode {mode!r}; choose one of {list(CALIBRATION_MODES)}.")


def estimate_baseline(features: np.ndarray, probabilities: np.ndarray) -> np.ndarray | None:
    """A speaker's baseline from the features ``(b, n)`` of a session's own clips, or ``None``
    when the session cannot give one honestly.

    The baseline is the mean of the clips: in a session that mixes emotions it sits near the
    speaker's everyday voice. A session the uncalibrated model hears as mostly one emotion
    (``probabilities`` ``(b, classes)``: more than ``MAX_DOMINANT_SHARE`` of its clips won by one
    class), or one of fewer than ``MIN_SESSION_CLIPS`` clips, would make that emotion the
    speaker's normal, so it gets ``None``: judged without adaptation, never worse than that.
    Shape ``(n,)``.
    """
    features = np.asarray(features, np.float64)
    if len(features) < MIN_SESSION_CLIPS or dominant_share(probabilities) > MAX_DOMINANT_SHARE:
        return None
    return features.mean(axis=0).astype(np.float32)


def dominant_share(probabilities: np.ndarray) -> float:
    """The share of clips won by the most frequent verdict. ``(b, classes) -> float``."""
    wins = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return float(wins.max() / max(1, wins.sum()))
