"""ser_core: speech emotion recognition that runs on a CPU in milliseconds.

>>> from ser_core import EmotionClassifier
>>> clf = EmotionClassifier.load()
>>> clf.predict("speech.wav").emotion
'happy'
"""

import os as _os

# The work is many small matrix products: extra BLAS threads only contend with each other
# and with concurrent requests (measured 10-30x slower filter-bank products under load).
# Effective only when NumPy is not loaded yet; an explicit setting by the user wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

from .audio import CLIP_SECONDS, MIN_SPEECH_SECONDS, SAMPLE_RATE  # noqa: E402
from .classifier import EmotionClassifier, Prediction, Timeline, Utterances, Window  # noqa: E402
from .datasets import EMOTIONS  # noqa: E402
from .errors import ArtifactError, AudioError, ParameterError, SERError  # noqa: E402
from .intensity import Intensity  # noqa: E402

__all__ = [
    "EmotionClassifier",
    "Prediction",
    "Intensity",
    "Timeline",
    "Utterances",
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
