"""Network architectures (Keras, for training) and the TensorFlow Lite runtime (for serving).

Training imports TensorFlow; serving never does: :class:`LiteModel` runs the exported
``.tflite`` file with LiteRT's interpreter, which imports in a fraction of a second.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .errors import ArtifactError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["ARCHITECTURES", "build_model", "to_tflite", "LiteModel", "SEED_PARAMETERS"]

SEED_PARAMETERS = 230_791  # the original design's trainable + non-trainable count
LEARNING_RATE = 1e-3


def quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up chatter before it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_seed(n_features: int, n_classes: int, *, learning_rate: float = LEARNING_RATE) -> keras.Model:
    """The original design: 512-256-128-64 dense with BatchNorm and Dropout, softmax head.

    Input shape ``(batch, n_features)`` of standardised features; output ``(batch, n_classes)``.
    """
    quiet_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input(shape=(n_features,), name="features")
    x = inputs
    for units, dropout, norm in ((512, 0.3, True), (256, 0.3, True), (128, 0.2, True), (64, 0.2, False)):
        x = layers.Dense(units, activation="relu")(x)
        if norm:
            x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="seed")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_linear(n_features: int, n_classes: int, **_: float) -> keras.Model:
    """Multinomial logistic regression as one softmax layer: ``(batch, n_features) -> (batch, n_classes)``.

    Its weights are fitted by scikit-learn (see ser_core.training) and set afterwards, with the
    calibration temperature folded in, so serving runs the same TFLite path as every network.
    """
    quiet_tensorflow()
    import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(inputs)
    return keras.Model(inputs, outputs, name="linear")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"seed": build_seed, "linear": build_linear}


def build_model(name: str, n_features: int, n_classes: int, **kwargs: float) -> keras.Model:
    """Build the architecture called ``name`` (see :data:`ARCHITECTURES`)."""
    if name not in ARCHITECTURES:
        raise ParameterError(f"Unknown architecture '{name}'; choose one of {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name](n_features, n_classes, **kwargs)


def to_tflite(model: keras.Model) -> bytes:
    """Convert a trained Keras model to a float32 TensorFlow Lite flatbuffer."""
    quiet_tensorflow()
    import contextlib
    import io

    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its trace signatures
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


class LiteModel:
    """A ``.tflite`` classifier run by LiteRT on one thread; safe to share across threads."""

    def __init__(self, content: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            # LiteRT's built-in kernels, without the default XNNPACK delegate: for a network this
            # small the delegate only adds ~30 ms to the first call (cold start) and a log line
            self._interpreter = Interpreter(
                model_content=content,
                num_threads=1,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ArtifactError("The model file is not a valid TensorFlow Lite model; reinstall the artifacts.") from e
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.n_features = int(self._input["shape"][-1])
        self.n_classes = int(self._output["shape"][-1])
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for standardised features. ``(batch, n_features) -> (batch, n_classes)``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ParameterError(f"The model expects feature rows of length {self.n_features}.")
        if x.shape[0] == 0:
            return np.zeros((0, self.n_classes), np.float32)
        with self._lock:
            if x.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], x.shape)
                self._interpreter.allocate_tensors()
                self._batch = x.shape[0]
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).copy()
