"""End to end: train a tiny model on a few real files, save, reload, compare; interruption safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import RAVDESS, REPO

from ser_core import EmotionClassifier
from ser_core import bundle as bundles
from ser_core.errors import ParameterError
from ser_core.training.build import train
from ser_core.training.corpora import scan_ravdess
from ser_core.training.fit import TrainConfig, actor_folds, evaluate_predictions, expected_calibration_error

pytestmark = pytest.mark.slow

CLASSES = ("neutral", "happy", "angry")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Links to 3 emotions x 4 actors x 4 files of the shared RAVDESS copy (48 files)."""
    if not RAVDESS.is_dir():
        pytest.skip("RAVDESS is not available")
    root = tmp_path_factory.mktemp("ravdess")
    for actor in (1, 2, 3, 4):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emo in ("01", "03", "05"):
            for src in sorted((RAVDESS / f"Actor_{actor:02d}").glob(f"03-01-{emo}-01-*.flac")):
                (folder / src.name).symlink_to(src)
    return root


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        architecture="seed",
        features="seed",
        emotions=CLASSES,
        folds=2,
        epochs=3,
        batch_size=16,
        augment=False,
        jobs=1,
        random_seed=7,
        compare_seed=False,
        degradations=(),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bundle") / "artifacts"
    metrics = train(tiny_data, out, tiny_config(), cache_dir=None)
    return out, metrics


def test_bundle_round_trip(tiny_bundle, tiny_data):
    out, metrics = tiny_bundle
    bundle = bundles.read(out)
    assert bundle.labels == CLASSES
    assert json.loads((out / "metrics.json").read_text()) == metrics
    clf = EmotionClassifier.load(out)
    files = scan_ravdess(tiny_data, CLASSES)[:6]
    first = [clf.predict(f.path).probabilities for f in files]
    again = [EmotionClassifier.load(out).predict(f.path).probabilities for f in files]
    assert first == again
    assert all(set(p) == set(CLASSES) for p in first)


def test_tflite_matches_keras(tiny_bundle, tiny_data):
    import keras

    from ser_core import audio

    out, _ = tiny_bundle
    clf = EmotionClassifier.load(out)
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    clips = np.stack(
        [audio.to_clip(audio.check_speech(audio.load(f.path))) for f in scan_ravdess(tiny_data, CLASSES)[:8]]
    )
    x = (clf.extractor(clips) - clf._mean) / clf._scale
    np.testing.assert_allclose(clf.model(x), np.asarray(model(x, training=False)), atol=1e-5)


def test_metrics_are_speaker_independent(tiny_bundle):
    _, metrics = tiny_bundle
    si = metrics["speaker_independent"]
    assert [f["test_actors"] for f in si["folds"]] == [[1, 2], [3, 4]]
    assert si["mean"]["uar"] == pytest.approx(np.mean([f["uar"] for f in si["folds"]]))
    assert "SPEAKER-DEPENDENT" in metrics["speaker_dependent_random_split"]["protocol"]
    card = (tiny_bundle[0] / "MODEL_CARD.md").read_text()
    assert f"{100 * si['mean']['uar']:.1f}%" in card
    assert (tiny_bundle[0] / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_training_is_deterministic(tiny_data, tiny_bundle, tmp_path):
    _, first = tiny_bundle
    again = train(tiny_data, tmp_path / "again", tiny_config(), cache_dir=None)
    assert again["speaker_independent"]["folds"] == first["speaker_independent"]["folds"]


def test_linear_model_with_the_seed_design_and_degraded_audio(tiny_data, tmp_path):
    """The linear recipe: C and temperature chosen on inner folds, the seed design beside it, degraded folds scored."""
    config = tiny_config(
        architecture="linear", compare_seed=True, degradations=("noise_10db", "telephone"), c_grid=(0.01, 1.0)
    )
    metrics = train(tiny_data, tmp_path / "linear", config, cache_dir=None)
    folds = metrics["speaker_independent"]["folds"]
    assert all(f["c"] in (0.01, 1.0) and 0.2 <= f["temperature"] <= 10 for f in folds)
    assert set(metrics["speaker_independent"]["degraded"]) == {"noise_10db", "telephone"}
    assert all(set(f["degraded"]) == {"noise_10db", "telephone"} for f in folds)
    assert metrics["seed"]["architecture"] == "seed"
    assert "uar" in metrics["seed"]["speaker_independent"]["mean"]
    assert metrics["model"]["parameters"] == 105 * len(CLASSES) + len(CLASSES)
    card = (tmp_path / "linear" / "MODEL_CARD.md").read_text()
    assert "seed design" in card and "telephone band" in card
    clf = EmotionClassifier.load(tmp_path / "linear")
    files = scan_ravdess(tiny_data, CLASSES)
    assert clf.predict(files[0].path).emotion in CLASSES


def test_actor_folds_are_disjoint_and_cover_everyone():
    folds = actor_folds(list(range(1, 21)), 5)
    assert folds == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]
    with pytest.raises(ParameterError, match="at least 5 actors"):
        actor_folds([1, 2, 3], 5)


def test_metrics_known_answers():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    m = evaluate_predictions(y, probs, ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert m["uar"] == pytest.approx(2 / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # every prediction has confidence 0.9333; accuracy 4/6: ECE is the gap
    assert expected_calibration_error(y, probs) == pytest.approx(0.9 + 0.1 / 3 - 4 / 6)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"folds": 1}, "at least 2 folds"),
        ({"epochs": 0}, "must be positive"),
        ({"emotions": ("happy", "happy")}, "at least two different"),
        ({"random_split_test": 1.5}, "between 0 and 1"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(ParameterError, match=message):
        TrainConfig(**kw)


def test_unknown_emotion_is_a_clear_error(tiny_data):
    with pytest.raises(ParameterError, match="Unknown emotions"):
        scan_ravdess(tiny_data, ("joyful",))


def interrupt_at(proc: subprocess.Popen, stage: str, sig: int, *, timeout: float = 240.0) -> bytes:
    """Send ``sig`` as soon as the run announces ``stage`` on stderr; returns all of stderr."""
    timer = threading.Timer(timeout, proc.kill)  # a run that never reaches the stage fails, never hangs
    timer.start()
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if announced(line, stage):
                proc.send_signal(sig)
                break
        seen.append(proc.communicate(timeout=60)[1])
    finally:
        timer.cancel()
    assert any(announced(line, stage) for line in seen), b"".join(seen)[-2000:]
    return b"".join(seen)


def announced(line: bytes, stage: str) -> bool:
    """Whether a line of stderr is the announcement of ``stage`` (after any progress bar's carriage return)."""
    return line.split(b"\r")[-1].strip() == f"stage: {stage}".encode()


@pytest.mark.parametrize(
    "sig, stage", [(signal.SIGINT, "fold 1/2"), (signal.SIGTERM, "fold 2/2"), (signal.SIGKILL, "final model")]
)
def test_interrupted_training_keeps_previous_artifacts(tiny_bundle, tiny_data, tmp_path, sig, stage):
    """Ctrl-C, SIGTERM or kill at several stages of a run leaves the previous bundle whole and loadable."""
    old, _ = tiny_bundle
    out = tmp_path / "artifacts"
    subprocess.run(["cp", "-r", str(old), str(out)], check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--data",
            str(tiny_data),
            "--out",
            str(out),
            "--emotions",
            ",".join(CLASSES),
            "--architecture",
            "seed",
            "--features",
            "seed",
            "--folds",
            "2",
            "--epochs",
            "30",
            "--no-augment",
            "--no-baseline",
            "--degradations",
            "",
            "--jobs",
            "1",
            "--cache",
            "",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    err = interrupt_at(proc, stage, sig)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err[-2000:]
    assert b"Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name != "artifacts"], "temporary folders were left behind"
    EmotionClassifier.load(out)
