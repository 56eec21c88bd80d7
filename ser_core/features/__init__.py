"""The registry of feature sets: which extractor a name or a saved bundle stands for.

Each feature set lives in its own module (:mod:`ser_core.features.seed`, the original
design's 105 features; :mod:`ser_core.features.rich`, 1,308 statistics), built on the
shared core in :mod:`ser_core.features.spectral`, and none imports another. A set is imported only
when a bundle or a training run asks for it.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from ..errors import ParameterError

__all__ = ["FEATURE_SETS", "FeatureExtractor", "build_extractor", "load_extractor"]

FEATURE_SETS = {  # name -> (module, config class, extractor class)
    "seed": ("seed", "SeedFeatureConfig", "SeedFeatureExtractor"),
    "rich": ("rich", "RichFeatureConfig", "RichFeatureExtractor"),
}


class FeatureExtractor(Protocol):
    """What every feature set's extractor offers."""

    config: Any  # a frozen dataclass with ``kind``, ``n_samples``, ``to_dict()`` and ``from_dict()``
    filters: dict[str, np.ndarray]  # everything it needs besides the config; stored in the bundle

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def n_features(self) -> int: ...

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """``(batch, n_samples)`` or ``(n_samples,)`` clips -> ``(batch, n_features)`` or ``(n_features,)`` float32."""
        ...


def _feature_set(kind: object) -> tuple[type, type]:
    """``(config class, extractor class)`` of the feature set named ``kind``."""
    if kind not in FEATURE_SETS:
        raise ParameterError(f"Unknown feature set {kind!r}; choose one of {list(FEATURE_SETS)}.")
    module_name, config_name, extractor_name = FEATURE_SETS[kind]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, config_name), getattr(module, extractor_name)


def build_extractor(kind: str, *, n_samples: int | None = None) -> FeatureExtractor:
    """A fresh extractor of feature set ``kind`` with default settings, for clips of ``n_samples``
    (default: the library's clip) (training time; imports librosa)."""
    config_cls, extractor_cls = _feature_set(kind)
    return extractor_cls.build(config_cls() if n_samples is None else config_cls(n_samples=n_samples))


def load_extractor(config: dict, arrays: dict[str, np.ndarray]) -> FeatureExtractor:
    """The extractor a bundle describes: its feature settings and its stored filter banks."""
    if not isinstance(config, dict):
        raise ParameterError("The feature settings must be a JSON object.")
    config_cls, extractor_cls = _feature_set(config.get("kind", "seed"))
    return extractor_cls(config_cls.from_dict(config), arrays)
