"""Network architectures (Keras) and their conversion to TensorFlow Lite: training only.

Serving never imports TensorFlow: :mod:`ser_core.inference.runtime` runs the ``.tflite`` file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "ARCHITECTURES",
    "build_model",
    "build_seed",
    "build_linear",
    "to_tflite",
    "quiet_tensorflow",
    "SEED_PARAMETERS",
]

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

    Its weights are fitted by scikit-learn (see ser_core.training.fit) and set afterwards, with the
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
