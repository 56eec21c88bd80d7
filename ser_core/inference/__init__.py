"""Inference: :class:`EmotionClassifier` and what adapts it to a speaker, judges intensity and
finds utterances; the verdicts it returns; the LiteRT runtime. Never imports batch, serve or training."""

from .classifier import EmotionClassifier
from .intensity import Intensity
from .verdicts import Overall, Prediction, Timeline, Utterances, Window, result_row
from .voice import Voice

__all__ = [
    "EmotionClassifier",
    "Prediction",
    "Timeline",
    "Utterances",
    "Overall",
    "Window",
    "Intensity",
    "Voice",
    "result_row",
]
