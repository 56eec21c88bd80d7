"""How strongly an emotion is expressed: RAVDESS's normal or strong delivery.

The intensity model is one logistic head per emotional class (trained by
:mod:`ser_core.training.intensity`), each telling normal from strong delivery of its own
emotion. A clip's strength is the heads' probabilities of "strong", weighted by how likely the
emotion model finds each emotion, so that the head of the emotion heard speaks loudest. Neutral
speech has no strong version in the data, so a neutral verdict carries no intensity.

The heads are a few plain arrays in the bundle's verified ``features.npz``
(:class:`ser_core.bundle.IntensityPart`); applying them is one small matrix product per clip,
beside the emotion model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bundle import IntensityPart
from ..emotions import NEUTRAL
from ..errors import ArtifactError, ParameterError

__all__ = ["Intensity", "IntensityModel", "LEVELS", "NO_INTENSITY", "STRONG_THRESHOLD", "describe"]

LEVELS = ("normal", "strong")  # RAVDESS intensity 01 and 02, in that order
STRONG_THRESHOLD = 0.5  # strength at or above this is "strong"
NO_INTENSITY = (NEUTRAL,)  # verdicts that carry no intensity: the data has no strong version of them
ADVERBS = {"normal": "mildly", "strong": "strongly"}  # the demo's wording


@dataclass(frozen=True)
class Intensity:
    """How strongly an emotion is expressed: ``level`` ``"normal"`` or ``"strong"``, and
    ``strength``, the model's probability (0-1) that the delivery is strong."""

    level: str
    strength: float

    @classmethod
    def from_strength(cls, strength: float) -> Intensity:
        strength = float(np.clip(strength, 0.0, 1.0))
        return cls(LEVELS[int(strength >= STRONG_THRESHOLD)], strength)

    def to_dict(self) -> dict:
        return {"level": self.level, "strength": round(self.strength, 4)}

    @property
    def text(self) -> str:
        """The intensity in words that cannot be misread: ``"normal (5% chance of strong)"``. The
        percentage is the chance of strong delivery, whatever the level; a bare ``"normal (5%)"``
        would read as "5% normal"."""
        return f"{self.level} ({100 * self.strength:.0f}% chance of strong)"


def describe(emotion: str, intensity: Intensity | None) -> str:
    """A verdict in words: ``"strongly angry"``, ``"mildly happy"``, or the bare emotion without an intensity."""
    return emotion if intensity is None else f"{ADVERBS[intensity.level]} {emotion}"


@dataclass(frozen=True)
class IntensityModel:
    """The intensity heads: ``weights`` ``(n_features, k)`` and ``bias`` ``(k,)`` for the ``k``
    emotions in ``emotions``, on features standardised by ``mean`` and ``scale`` ``(n_features,)``."""

    emotions: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_part(cls, part: IntensityPart | None, labels: tuple[str, ...], n_features: int) -> IntensityModel | None:
        """The bundle's intensity heads, checked against its labels and feature count; ``None``
        for a bundle without them (built before intensity existed)."""
        if part is None:
            return None
        emotions = part.emotions
        weights, bias, mean, scale = (
            np.asarray(a, np.float32) for a in (part.weights, part.bias, part.mean, part.scale)
        )
        if (
            not emotions
            or not set(emotions) <= set(labels)
            or weights.shape != (n_features, len(emotions))
            or bias.shape != (len(emotions),)
            or not mean.shape == scale.shape == (n_features,)
        ):
            raise ArtifactError("The intensity model does not fit the features or labels; rebuild the artifacts.")
        return cls(emotions, weights, bias, mean, scale)

    def strength(self, features: np.ndarray, probabilities: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """Probability of strong delivery of raw feature rows ``(b, n_features)``, given the emotion
        model's ``probabilities`` ``(b, len(labels))``: each head weighted by its emotion's share
        among the emotions the heads cover. Shape ``(b,)``."""
        if features.shape[0] != probabilities.shape[0]:
            raise ParameterError("Give one row of probabilities for each row of features.")
        columns = [labels.index(e) for e in self.emotions]
        share = np.asarray(probabilities, np.float64)[:, columns]
        share = share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
        heads = 1.0 / (1.0 + np.exp(-(((features - self.mean) / self.scale) @ self.weights + self.bias)))
        return (share * heads).sum(axis=1)
