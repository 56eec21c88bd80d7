"""ser_core: speech emotion recognition that runs on a CPU in milliseconds.

>>> from ser_core import EmotionClassifier
>>> clf = EmotionClassifier.load()
>>> clf.predict("speech.wav").emotion
'happy'
"""

from .audio import CLIP_SECONDS, MIN_SPEECH_SECONDS, SAMPLE_RATE
from .classifier import EMOTIONS, EmotionClassifier, Prediction, Timeline, Window
from .errors import ArtifactError, AudioError, ParameterError, SERError

__all__ = [
    "EmotionClassifier",
    "Prediction",
    "Timeline",
    "Window",
    "EMOTIONS",
    "SAMPLE_RATE",
    "CLIP_SECONDS",
    "MIN_SPEECH_SECONDS",
    "SERError",
    "AudioError",
    "ArtifactError",
    "ParameterError",
]

__version__ = "0.1.0"
