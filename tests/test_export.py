"""Exports: the exported model gives the Keras model's probabilities; the feature files and
docs/tflite_example.py reproduce ser_core without it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, speech_like

from ser_core.errors import ParameterError
from ser_core.training.export import export_model, load_keras_model

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    from ser_core import bundle

    return bundle.read(bundle_dir)


@pytest.fixture(scope="module")
def tflite_export(bundle_dir, tmp_path_factory) -> Path:
    return export_model(tmp_path_factory.mktemp("exp") / "tflite", "tflite", artifacts=bundle_dir)


@pytest.fixture(scope="module")
def standardised(bundle, ravdess_files) -> np.ndarray:
    """Standardised feature rows of real and synthetic clips, plus random rows."""
    from ser_core import EmotionClassifier, audio

    clf = EmotionClassifier(bundle)
    signals = [audio.load(f) for f in ravdess_files[:4]] + [speech_like(2.0, seed=s) for s in range(3)]
    clips = np.stack([audio.to_clip(audio.check_speech(y)) for y in signals])
    rows = (clf.extractor(clips) - clf._mean) / clf._scale
    random = np.random.default_rng(0).standard_normal((5, rows.shape[1])).astype(np.float32)
    return np.concatenate([rows, random]).astype(np.float32)


@pytest.fixture(scope="module")
def keras_probs(bundle, standardised) -> np.ndarray:
    return np.asarray(load_keras_model(bundle)(standardised, training=False))


def _tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


@pytest.mark.slow
def test_tflite_export_matches_keras(tflite_export, standardised, keras_probs):
    got = _tflite(tflite_export / "model.tflite", standardised)
    assert got.shape == keras_probs.shape
    np.testing.assert_allclose(got, keras_probs, atol=TOLERANCE, rtol=0)


@pytest.mark.slow
def test_onnx_export_matches_keras(bundle_dir, tmp_path, standardised, keras_probs):
    ort = pytest.importorskip("onnxruntime")
    out = export_model(tmp_path / "onnx", "onnx", artifacts=bundle_dir)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: standardised})[0]
    np.testing.assert_allclose(got, keras_probs, atol=TOLERANCE, rtol=0)
    assert (out / "labels.txt").read_text() == (bundle_dir / "labels.txt").read_text()


def test_feature_files_describe_the_bundle(tflite_export, bundle):
    from ser_core.bundle import sha256

    labels = (tflite_export / "labels.txt").read_text().split()
    assert labels == list(bundle.labels)
    info = json.loads((tflite_export / "features.json").read_text())
    assert info["features"] == bundle.features
    assert len(info["feature_names"]) == info["n_features"] == bundle.mean.shape[0]
    with np.load(tflite_export / "features.npz", allow_pickle=False) as npz:
        # standardisation and every filter bank of the feature set; the export carries the default
        # model, not the adapted ones, the intensity heads and their standardisation
        exported = {"mean": bundle.mean, "scale": bundle.scale, **bundle.filters}
        assert set(exported) <= set(npz.files)
        assert not {k for k in npz.files if k.startswith(("calibrated_", "session_", "intensity_"))}
        for key, value in exported.items():
            np.testing.assert_array_equal(npz[key], value)
    manifest = json.loads((tflite_export / "export.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256((tflite_export / name).read_bytes()) == digest


def _example():
    spec = importlib.util.spec_from_file_location("tflite_example", REPO / "docs" / "tflite_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seconds", [1.0, 2.5, 9.0])
def test_docs_example_reproduces_ser_core(tflite_export, bundle, seconds):
    """docs/FEATURES.md is exact enough: its NumPy re-implementation gives ser_core's probabilities."""
    from ser_core import EmotionClassifier

    y = speech_like(seconds, f0=150.0, seed=int(seconds * 10))
    if seconds > 5:
        y[len(y) // 3 : len(y) // 3 + 24_000] = 0.0  # a pause inside the speech
    got = _example().predict(tflite_export, y)
    want = EmotionClassifier(bundle).predict(y, 16_000).probabilities
    assert got.keys() == want.keys()
    np.testing.assert_allclose(list(got.values()), list(want.values()), atol=TOLERANCE, rtol=0)


def test_docs_example_on_a_real_file(tflite_export, bundle, ravdess_files):
    from ser_core import EmotionClassifier

    example = _example()
    got = example.predict(tflite_export, example.read_audio(str(ravdess_files[0])))
    want = EmotionClassifier(bundle).predict(ravdess_files[0]).probabilities
    np.testing.assert_allclose(list(got.values()), list(want.values()), atol=TOLERANCE, rtol=0)


def test_export_never_replaces_a_folder_that_is_not_an_export(tmp_path, bundle_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(ParameterError, match="not an earlier export"):
        export_model(out, "tflite", artifacts=bundle_dir)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_export_replaces_an_earlier_export_atomically(tmp_path, bundle_dir):
    out = export_model(tmp_path / "exp", "tflite", artifacts=bundle_dir)
    (out / "stale.txt").write_text("from before")
    export_model(out, "tflite", artifacts=bundle_dir)
    assert not (out / "stale.txt").exists()
    assert (out / "model.tflite").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temporary folder left behind


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    from ser_core.cli import main

    (tmp_path / "x").write_text("a file")
    assert main(["export", "--format", "tflite", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--format", "coreml", "--out", str(tmp_path / "y")])
    assert exit_.value.code == 2
