"""ser_core: speech emotion recognition that runs on a CPU in milliseconds.

>>> from ser_core import EmotionClassifier
>>> clf = EmotionClassifier.load()
>>> clf.predict("speech.wav").emotion
'happy'

The package's folders are its layers, each importing only those below it: the signal
(:mod:`~ser_core.audio`, :mod:`~ser_core.features`, the model :mod:`~ser_core.bundle`),
:mod:`~ser_core.inference`, :mod:`~ser_core.batch` (many files), :mod:`~ser_core.training`,
:mod:`~ser_core.serve` (REST and Gradio), and :mod:`~ser_core.cli` on top. Importing it has no
side effects.
"""

from .audio import CLIP_SECONDS, MIN_SPEECH_SECONDS, SAMPLE_RATE
from .emotions import EMOTIONS
from .errors import ArtifactError, AudioError, ParameterError, SERError
from .inference import EmotionClassifier, Intensity, Prediction, Timeline, Utterances, Voice, Window

__all__ = [
    "EmotionClassifier",
    "Prediction",
    "Intensity",
    "Timeline",
    "Utterances",
    "Window",
    "Voice",
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
