"""Model tests: the seed architecture's size, LiteRT against Keras, LiteModel's batch handling."""

from __future__ import annotations

import numpy as np
import pytest

from ser_core import bundle as bundles
from ser_core.bundle import MODEL_KERAS
from ser_core.errors import ArtifactError, ParameterError
from ser_core.features.seed import N_FEATURES
from ser_core.inference.runtime import LiteModel
from ser_core.training.networks import SEED_PARAMETERS, build_model, to_tflite

N_CLASSES = 7
KERAS_TOLERANCE = 1e-5  # absolute, on probabilities


def keras_probabilities(model, x: np.ndarray) -> np.ndarray:
    """Keras inference without predict()'s batching machinery. ``(b, f) -> (b, classes)``."""
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def seed_model():
    """An untrained seed network with its BatchNorm statistics moved off their defaults."""
    pytest.importorskip("keras")
    import keras

    keras.utils.set_random_seed(7)
    model = build_model("seed", N_FEATURES, N_CLASSES)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + rng.normal(0, 0.1, mean.shape), var * 2.0])
    return model


@pytest.fixture(scope="module")
def seed_lite(seed_model) -> LiteModel:
    return LiteModel(to_tflite(seed_model))


@pytest.mark.slow
def test_seed_architecture_has_the_original_parameter_count(seed_model) -> None:
    assert seed_model.count_params() == SEED_PARAMETERS == 230_791
    assert seed_model.input_shape == (None, N_FEATURES)
    assert seed_model.output_shape == (None, N_CLASSES)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ParameterError, match="Unknown architecture 'resnet'"):
        build_model("resnet", N_FEATURES, N_CLASSES)


@pytest.mark.slow
def test_tflite_export_matches_keras(seed_model, seed_lite: LiteModel, rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(seed_lite(x), keras_probabilities(seed_model, x), atol=KERAS_TOLERANCE, rtol=0)


@pytest.mark.slow
def test_shipped_tflite_matches_shipped_keras(rng: np.random.Generator) -> None:
    """The bundle's model.tflite and model.keras give the same probabilities."""
    folder = bundles.default_folder()
    if not (folder / MODEL_KERAS).is_file():
        pytest.skip(f"no shipped Keras model at {folder}")
    pytest.importorskip("keras")
    import keras

    bundle = bundles.read(folder)  # verifies every checksum
    bundles.read_file(folder, MODEL_KERAS)  # and model.keras's
    keras_model = keras.saving.load_model(folder / MODEL_KERAS, compile=False)
    lite = LiteModel(bundle.model)
    # standardised features: the shipped model only ever sees values of this scale
    x = np.concatenate([rng.standard_normal((64, lite.n_features)), 3 * rng.standard_normal((8, lite.n_features))])
    x = x.astype(np.float32)
    lite_probs = lite(x)
    np.testing.assert_allclose(lite_probs, keras_probabilities(keras_model, x), atol=KERAS_TOLERANCE, rtol=0)
    np.testing.assert_allclose(lite_probs.sum(axis=1), 1.0, atol=1e-5)


def test_shipped_bundle_matches_keras_on_real_features(classifier, ravdess_files) -> None:
    """The shipped pipeline's probabilities for real speech equal Keras on the same features."""
    keras = pytest.importorskip("keras")
    from ser_core import audio

    path = classifier.bundle.path / MODEL_KERAS
    if not path.is_file():
        pytest.skip("the bundle has no Keras model")
    clips = np.stack([audio.to_clip(audio.check_speech(audio.load(f))) for f in ravdess_files[:4]])
    x = (classifier.extractor(clips) - classifier._mean) / classifier._scale
    expected = keras_probabilities(keras.saving.load_model(path, compile=False), x)
    np.testing.assert_allclose(classifier.probabilities(clips), expected, atol=KERAS_TOLERANCE, rtol=0)


@pytest.mark.parametrize("sizes", [(1, 7, 32, 1), (32, 3, 3, 64), (5, 1, 5)])
def test_lite_model_any_batch_size_equals_row_by_row(seed_lite: LiteModel, rng: np.random.Generator, sizes) -> None:
    for n in sizes:
        x = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
        batch = seed_lite(x)
        assert batch.shape == (n, N_CLASSES) and batch.dtype == np.float32
        rows = np.concatenate([seed_lite(row[None]) for row in x])
        np.testing.assert_allclose(batch, rows, atol=1e-6, rtol=0)


def test_lite_model_empty_batch(seed_lite: LiteModel) -> None:
    assert seed_lite(np.zeros((0, N_FEATURES), np.float32)).shape == (0, N_CLASSES)


def test_lite_model_result_is_not_overwritten_by_the_next_call(seed_lite: LiteModel, rng: np.random.Generator) -> None:
    x1, x2 = (rng.standard_normal((2, N_FEATURES)).astype(np.float32) for _ in range(2))
    first = seed_lite(x1)
    kept = first.copy()
    seed_lite(x2)
    np.testing.assert_array_equal(first, kept)


def test_lite_model_accepts_float64_and_non_contiguous_rows(seed_lite: LiteModel, rng: np.random.Generator) -> None:
    x = rng.standard_normal((N_FEATURES, 6))  # float64, transposed view below
    np.testing.assert_allclose(seed_lite(x.T), seed_lite(np.ascontiguousarray(x.T, np.float32)), atol=1e-7)


@pytest.mark.parametrize("shape", [(N_FEATURES,), (2, N_FEATURES - 1), (1, 2, N_FEATURES)])
def test_lite_model_refuses_wrong_shapes(seed_lite: LiteModel, shape: tuple[int, ...]) -> None:
    with pytest.raises(ParameterError, match=f"feature rows of length {N_FEATURES}"):
        seed_lite(np.zeros(shape, np.float32))


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all", b"\x00" * 64])
def test_lite_model_refuses_invalid_content(content: bytes) -> None:
    with pytest.raises(ArtifactError, match="not a valid TensorFlow Lite model"):
        LiteModel(content)
