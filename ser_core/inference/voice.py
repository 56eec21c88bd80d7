"""Speaker adaptation: a :class:`Voice` is a speaker's everyday voice as the model sees it, and
:func:`relative` puts any of their clips' features in relation to it.

The words, used the same way everywhere (code, JSON, command line, docs): a verdict is
*adapted* when it is judged relative to a speaker's *voice*; a voice comes from one of two
*sources*: ``"reference"``, recordings of the speaker's everyday voice that they give
(*calibration*: ``calibrate()``, ``--reference``, the ``reference`` upload field, the demo's
calibration step), or ``"same-speaker"``, estimated from the recordings being judged, all of
one speaker (``adapt()``, ``--same-speaker``). Each source has its *adapted model*.

An emotion is a departure from a speaker's own everyday voice, so the adapted model reads each
clip's features beside their difference from the speaker's voice (the mean features of their
unemotional speech). A :class:`Voice` holds that mean and no audio; it serialises to JSON and
back and names the feature set it belongs to, so a voice made with one model is never applied
to another's features.

For the same-speaker source, :func:`same_speaker_mean` takes the mean of a session's own clips,
and declines (judging without adaptation) when the session sounds dominated by one emotion, so
that an angry call is never taken for the speaker's normal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = [
    "Voice",
    "SOURCES",
    "ADAPTATION_MODES",
    "adapted",
    "relative",
    "feature_fingerprint",
    "same_speaker_mean",
    "dominant_share",
]

ADAPTATION_MODES = ("concat", "offset")  # the adapted models' input: [x, x - voice] or x - voice
VOICE_FORMAT = 1
SOURCES = ("reference", "same-speaker")  # where a voice comes from; also the verdicts' "adapted"
MIN_SESSION_CLIPS = 8  # fewer clips (about 10 s of speech) cannot show a speaker's range
MAX_DOMINANT_SHARE = 0.5  # a session more than half of one verdict is not adapted to (set beforehand)


def feature_fingerprint(feature_config: dict) -> str:
    """A short digest of a feature set's settings: voices carry it and are checked against it."""
    return hashlib.sha256(json.dumps(feature_config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: the mean features of their everyday speech. Small, and no audio.

    ``clips`` and ``seconds`` say how much speech it was built from; ``source`` is
    ``"reference"`` (recordings the speaker gave) or ``"same-speaker"`` (estimated from the
    recordings being judged).
    """

    mean: np.ndarray  # (n_features,) float32
    clips: int
    seconds: float
    features: str  # feature_fingerprint of the feature set
    source: str = "reference"

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float32)
        if mean.ndim != 1 or not mean.size or not np.all(np.isfinite(mean)):
            raise ParameterError("A voice's mean must be a non-empty vector of finite numbers.")
        if self.source not in SOURCES:
            raise ParameterError(f"A voice's source must be one of {list(SOURCES)}, not {self.source!r}.")
        if self.clips < 1 or self.seconds <= 0:
            raise ParameterError("A voice is built from at least one clip with speech.")
        object.__setattr__(self, "mean", mean)

    def to_dict(self) -> dict:
        return {
            "format": VOICE_FORMAT,
            "features": self.features,
            "source": self.source,
            "clips": self.clips,
            "seconds": round(self.seconds, 3),
            "mean": [float(v) for v in self.mean],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Voice:
        """A voice saved by :meth:`to_dict`; also reads voices saved before the mean was called
        ``"mean"`` (it was ``"reference"``)."""
        if not isinstance(data, dict) or data.get("format") != VOICE_FORMAT:
            raise ParameterError("This is not a saved voice of this version; calibrate again.")
        try:
            return cls(
                mean=np.asarray(data["mean"] if "mean" in data else data["reference"], np.float32),
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


def relative(features: np.ndarray, mean: np.ndarray, mode: str) -> np.ndarray:
    """Features ``(b, n)`` in relation to a speaker's voice, its ``mean`` ``(n,)``: ``(b, 2 n)`` for
    ``"concat"`` (the features and their difference from the voice), ``(b, n)`` for ``"offset"``."""
    if mode == "offset":
        return features - mean
    if mode == "concat":
        return np.concatenate([features, features - mean], axis=1)
    raise ParameterError(f"Unknown adaptation mode {mode!r}; choose one of {list(ADAPTATION_MODES)}.")


def same_speaker_mean(features: np.ndarray, probabilities: np.ndarray) -> np.ndarray | None:
    """A speaker's voice (its mean features) from the features ``(b, n)`` of a session's own clips,
    or ``None`` when the session cannot give one honestly.

    The voice is the mean of the clips: in a session that mixes emotions it sits near the
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
