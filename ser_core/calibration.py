"""Speaker calibration: a :class:`Voice` is a speaker's everyday voice as the model sees it, and
:func:`relative` puts any of their clips' features in relation to it.

An emotion is a departure from a speaker's own everyday voice, so the calibrated model reads
each clip's features beside their difference from the speaker's neutral reference (the mean
features of a few seconds of their unemotional speech). A :class:`Voice` holds that mean and no
audio; it serialises to JSON and back and names the feature set it belongs to, so a voice made
with one model is never applied to another's features.

Without a reference, :func:`estimate_baseline` finds the baseline in a session's own clips,
weighted by how neutral they sound and blended with the training speakers' mean neutral voice,
so that a session dominated by one emotion is not mistaken for the speaker's normal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["Voice", "CALIBRATION_MODES", "relative", "feature_fingerprint", "estimate_baseline"]

CALIBRATION_MODES = ("concat", "offset")  # the calibrated model's input: [x, x - ref] or x - ref
VOICE_FORMAT = 1
ADAPTATIONS = ("reference", "same-speaker")


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


def relative(features: np.ndarray, reference: np.ndarray, mode: str) -> np.ndarray:
    """Features ``(b, n)`` in relation to a speaker's ``reference`` ``(n,)``: ``(b, 2 n)`` for
    ``"concat"`` (the features and their difference from the reference), ``(b, n)`` for ``"offset"``."""
    if mode == "offset":
        return features - reference
    if mode == "concat":
        return np.concatenate([features, features - reference], axis=1)
    raise ParameterError(f"Unknown calibration mode {mode!r}; choose one of {list(CALIBRATION_MODES)}.")


def estimate_baseline(
    features: np.ndarray, neutral: np.ndarray, population: np.ndarray, *, prior: float = 4.0
) -> np.ndarray:
    """A speaker's baseline from the features ``(b, n)`` of a session's own clips.

    ``neutral`` ``(b,)`` weighs each clip by how much the uncalibrated model hears an everyday
    voice in it (its neutral and calm probabilities). The baseline is the weighted median of the
    clips, blended with ``population`` ``(n,)`` (the mean neutral voice of the training speakers)
    as though it were ``prior`` more clips: a session with little everyday speech, such as an
    angry call, stays close to the population and so close to the uncalibrated model, and a
    session with plenty moves to the speaker's own. Shape ``(n,)``.
    """
    features = np.asarray(features, np.float64)
    population = np.asarray(population, np.float64)
    w = np.clip(np.asarray(neutral, np.float64), 0.0, None)
    total = float(w.sum())
    if total <= 0:
        return population.astype(np.float32)
    share = total / (total + prior)
    return (share * _weighted_median(features, w / total) + (1 - share) * population).astype(np.float32)


def _weighted_median(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per column of ``x`` ``(b, n)``, the median under weights ``w`` ``(b,)`` summing to one."""
    order = np.argsort(x, axis=0)
    cumulative = np.cumsum(w[order], axis=0)
    columns = np.arange(x.shape[1])
    rows = order[np.argmax(cumulative >= 0.5, axis=0), columns]
    return x[rows, columns]
