"""Intensity (normal or strong delivery): the verdict's field, its wording, and a tiny model
trained end to end on synthetic RAVDESS-named recordings, served by the library, CLI and REST."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, speech_like

from ser_core import EmotionClassifier, Prediction, bundle
from ser_core.bundle import CONFIG_JSON, FEATURES_NPZ, MANIFEST, write_files
from ser_core.errors import ArtifactError
from ser_core.inference.intensity import Intensity, IntensityModel, describe
from ser_core.training.fit import TrainConfig
from ser_core.training.intensity import IntensityConfig, fit_intensity

CLASSES = ("neutral", "happy", "angry")
CODES = {"neutral": 1, "happy": 3, "angry": 5}
F0 = {"neutral": 150.0, "happy": 230.0, "angry": 110.0}
ACTORS = (1, 2, 3, 4)


def synthetic(emotion: str, strong: bool, seed: int) -> np.ndarray:
    """A speech-like take whose pitch tells the emotion and whose breath noise tells the intensity."""
    y = speech_like(1.6, f0=F0[emotion] * (1 + 0.05 * (seed % 3)), seed=seed)
    if strong:
        y = y + 0.08 * np.random.default_rng(seed).standard_normal(y.size).astype(np.float32) * (np.abs(y) > 0)
    return y.astype(np.float32)


# ---------------------------------------------------------------- the verdict


def test_level_follows_the_strength_threshold():
    assert Intensity.from_strength(0.49) == Intensity("normal", 0.49)
    assert Intensity.from_strength(0.5).level == "strong"
    assert Intensity.from_strength(1.7) == Intensity("strong", 1.0)  # clipped into 0-1


def test_prediction_carries_intensity_and_neutral_carries_none():
    angry = Prediction.from_probabilities(CLASSES, np.array([0.1, 0.2, 0.7]), strength=0.8)
    assert angry.intensity == Intensity("strong", 0.8)
    assert angry.to_dict()["intensity"] == {"level": "strong", "strength": 0.8}
    neutral = Prediction.from_probabilities(CLASSES, np.array([0.7, 0.2, 0.1]), strength=0.8)
    assert neutral.intensity is None and neutral.to_dict()["intensity"] is None
    unknown = Prediction.from_probabilities(CLASSES, np.array([0.1, 0.2, 0.7]))  # no intensity model
    assert unknown.intensity is None and unknown.to_dict()["intensity"] is None


def test_mean_verdict_averages_the_strength():
    a = Prediction.from_probabilities(CLASSES, np.array([0.1, 0.1, 0.8]), strength=0.9)
    b = Prediction.from_probabilities(CLASSES, np.array([0.6, 0.1, 0.3]), strength=0.3)  # neutral clip: no intensity
    mean = Prediction.mean(CLASSES, [a, b])
    assert mean.emotion == "angry" and mean.intensity == Intensity("strong", pytest.approx(0.6))
    assert Prediction.mean(CLASSES, [a, Prediction.from_probabilities(CLASSES, np.ones(3))]).strength is None


@pytest.mark.parametrize(
    ("emotion", "intensity", "words"),
    [("angry", Intensity("strong", 0.9), "strongly angry"), ("happy", Intensity("normal", 0.2), "mildly happy"),
     ("neutral", None, "neutral")],
)  # fmt: skip
def test_demo_wording(emotion, intensity, words):
    assert describe(emotion, intensity) == words


def test_demo_card_says_how_strongly_and_shows_the_strength():
    from ser_core.serve import gradio_app as app

    sure = Prediction.from_probabilities(CLASSES, np.array([0.02, 0.03, 0.95]), strength=0.83)
    card = app.render_verdict(sure)
    assert "strongly angry" in card and "strength 83%" in card
    card = app.render_verdict(Prediction.from_probabilities(CLASSES, np.array([0.95, 0.03, 0.02]), strength=0.83))
    assert "strength" not in card and "strongly" not in card  # neutral: no intensity


def test_heads_weighted_by_the_emotion_probabilities():
    """Each head speaks for its emotion: a certain emotion gives exactly its head's probability."""
    model = IntensityModel(
        ("happy", "angry"),
        weights=np.array([[1.0, -1.0]], np.float32),
        bias=np.zeros(2, np.float32),
        mean=np.zeros(1, np.float32),
        scale=np.ones(1, np.float32),
    )
    x = np.array([[2.0], [2.0]], np.float32)
    probs = np.array([[0.5, 0.5, 0.0], [0.9, 0.0, 0.1]])  # neutral's share is left out
    sigmoid = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(model.strength(x, probs, CLASSES), [sigmoid, 1 - sigmoid], rtol=1e-6)


def test_fit_intensity_learns_a_synthetic_contrast(rng):
    """Strong rows differ from normal ones along one feature: the heads find it, C from inner folds."""
    n = 400
    emotion = rng.integers(0, 2, n)
    strong = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[:, 2] += 2.5 * strong * np.where(emotion == 0, 1, -1)  # the sign of the cue depends on the emotion
    groups = np.repeat(np.arange(1, 9), n // 8)
    model, details = fit_intensity(
        x, strong, emotion, groups, np.zeros(n, bool), ("happy", "angry"), IntensityConfig(c_grid=(0.01, 1.0)),
        desc="test",
    )  # fmt: skip
    assert details["c"] in (0.01, 1.0) and details["inner_uar_by_c"][str(details["c"])] > 0.85
    probs = np.eye(3)[emotion + 1]
    assert np.mean((model.strength(x, probs, CLASSES) >= 0.5) == strong) > 0.85


def _table(intensities: tuple[int, ...], rng: np.random.Generator):
    """A feature table of 4 actors x happy/angry, one original row a recording of each intensity given."""
    from ser_core.training.corpora import FeatureTable, Recording

    files = [
        Recording(Path(f"{actor}-{emotion}-{level}.wav"), emotion, actor, level, 1, 1)
        for actor in ACTORS
        for emotion in ("happy", "angry")
        for level in intensities
    ]
    n = len(files)
    return FeatureTable(rng.standard_normal((n, 4)).astype(np.float32), np.arange(n), np.zeros(n, bool), files)


def test_no_intensity_model_without_both_levels(rng):
    """Data with normal delivery only (as EmoDB, or a subset) cannot teach the contrast: no model."""
    from ser_core.training.intensity import train_intensity

    config = TrainConfig(emotions=CLASSES, augment=False)
    assert train_intensity(_table((1,), rng), config, IntensityConfig(), desc="test") is None
    model, _ = train_intensity(_table((1, 2), rng), config, IntensityConfig(inner_folds=2), desc="test")
    assert model.emotions == ("happy", "angry")


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def synthetic_corpus(tmp_path_factory) -> Path:
    """RAVDESS-named synthetic takes: 4 actors, neutral (normal only) and happy, angry at both intensities."""
    root = tmp_path_factory.mktemp("synthetic")
    seed = 0
    for actor in ACTORS:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emotion in CLASSES:
            for level in (1,) if emotion == "neutral" else (1, 2):
                for take in (1, 2):
                    seed += 1
                    name = f"03-01-{CODES[emotion]:02d}-{level:02d}-01-{take:02d}-{actor:02d}.wav"
                    sf.write(folder / name, synthetic(emotion, level == 2, seed), 16_000, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def tiny_bundle(synthetic_corpus, tmp_path_factory) -> tuple[Path, dict]:
    from ser_core.training.build import train

    config = TrainConfig(
        features="seed", emotions=CLASSES, folds=2, augment=False, jobs=1, compare_seed=False, degradations=(),
        c_grid=(0.1, 1.0), inner_folds=2,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("bundle") / "artifacts"
    metrics = train(
        synthetic_corpus, out, config, cache_dir=None, adaptation=None,
        intensity=IntensityConfig(c_grid=(0.1, 1.0), inner_folds=2),
    )  # fmt: skip
    return out, metrics


@pytest.fixture(scope="module")
def tiny(tiny_bundle) -> EmotionClassifier:
    return EmotionClassifier.load(tiny_bundle[0], jobs=1)


@pytest.mark.slow
def test_training_reports_intensity_by_actor_fold(tiny_bundle):
    out, metrics = tiny_bundle
    block = metrics["intensity"]
    assert [f["test_actors"] for f in block["folds"]] == [[1, 2], [3, 4]]
    assert block["mean"]["uar"] == pytest.approx(np.mean([f["uar"] for f in block["folds"]]))
    assert block["mean"]["uar"] >= 0.75  # the breath noise is an easy cue
    assert metrics["intensity_model"]["emotions"] == ["happy", "angry"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Intensity" in card and f"{100 * block['mean']['uar']:.1f}%" in card and "RAVDESS only" in card
    assert json.loads((out / CONFIG_JSON).read_text())["intensity"]["emotions"] == ["happy", "angry"]


@pytest.mark.slow
def test_served_strength_tells_strong_from_normal_and_survives_reloading(tiny_bundle, tiny):
    takes = [synthetic(e, s, 1000 + i) for i, (e, s) in enumerate([("happy", True), ("angry", True),
                                                                    ("happy", False), ("angry", False)])]  # fmt: skip
    verdicts = [tiny.predict(y, 16_000) for y in takes]
    strengths = [v.strength for v in verdicts]
    assert min(strengths[:2]) > 0.5 > max(strengths[2:])
    for v in verdicts:
        assert (v.intensity is None) == (v.emotion == "neutral")
    again = EmotionClassifier.load(tiny_bundle[0], jobs=1)
    assert [again.predict(y, 16_000) for y in takes] == verdicts


@pytest.mark.slow
def test_timeline_windows_and_summary_carry_intensity(tiny):
    y = np.concatenate([synthetic("angry", True, 2001), synthetic("angry", True, 2002)])
    timeline = tiny.timeline(y, 16_000, window=1.5, hop=1.0)
    data = timeline.to_dict()
    assert all("intensity" in w for w in data["windows"] if w["speech"])
    assert data["summary"]["intensity"] == timeline.summary.to_dict()["intensity"]
    rows = list(csv.DictReader(io.StringIO(timeline.to_csv())))
    voiced = [r for r in rows if r["speech"] == "1" and r["emotion"] != "neutral"]
    assert voiced and all(r["intensity"] in ("normal", "strong") and 0 <= float(r["strength"]) <= 1 for r in voiced)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "ser_core", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow
def test_cli_prints_intensity(tiny_bundle, tiny, tmp_path):
    path = tmp_path / "strong.wav"
    sf.write(path, synthetic("angry", True, 3001), 16_000)
    expected = tiny.predict(path).to_dict()["intensity"]
    got = json.loads(_run_cli("predict", "--json", "--artifacts", str(tiny_bundle[0]), str(path)).stdout)
    assert got["intensity"] == expected
    text = _run_cli("predict", "--artifacts", str(tiny_bundle[0]), str(path)).stdout
    if expected is not None:
        assert f"{expected['level']} ({100 * expected['strength']:.0f}% chance of strong)" in text
    timeline = json.loads(_run_cli("timeline", "--json", "--artifacts", str(tiny_bundle[0]), str(path)).stdout)
    assert "intensity" in timeline["summary"]


@pytest.mark.slow
def test_rest_responses_carry_intensity(tiny, tmp_path):
    import httpx
    from test_server import _Server, _wav

    from ser_core.serve.rest import create_app

    y = synthetic("happy", True, 4001)
    expected = tiny.predict(y, 16_000).to_dict()["intensity"]
    with _Server(create_app(tiny)) as server:
        got = httpx.post(f"{server.url}/v1/predict", files={"file": ("a.wav", _wav(y))}).json()
        timeline = httpx.post(f"{server.url}/v1/timeline", files={"file": ("a.wav", _wav(y))}).json()
        schema = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]
    assert got["intensity"]["level"] == expected["level"]  # the upload is 16-bit: the strength is close, not equal
    assert got["intensity"]["strength"] == pytest.approx(expected["strength"], abs=0.01)
    assert "intensity" in timeline["summary"] and all("intensity" in w for w in timeline["windows"])
    assert set(schema["IntensityOut"]["properties"]) == {"level", "strength"}


@pytest.mark.slow
def test_bundle_without_intensity_still_loads(tiny_bundle, tmp_path):
    """A bundle built before intensity existed: no arrays, no config entry; verdicts say null."""
    out, _ = tiny_bundle
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != MANIFEST}
    config = json.loads(files[CONFIG_JSON])
    del config["intensity"]
    with np.load(io.BytesIO(files[FEATURES_NPZ])) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("intensity_")}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files.update({CONFIG_JSON: json.dumps(config).encode(), FEATURES_NPZ: buffer.getvalue()})
    old = write_files(tmp_path / "old", files)
    clf = EmotionClassifier.load(old, jobs=1)
    assert clf.intensity is None
    verdict = clf.predict(synthetic("angry", True, 5001), 16_000)
    assert verdict.intensity is None and verdict.to_dict()["intensity"] is None


@pytest.mark.slow
def test_damaged_intensity_description_is_an_artifact_error(tiny_bundle, tmp_path):
    out, _ = tiny_bundle
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != MANIFEST}
    config = json.loads(files[CONFIG_JSON])
    config["intensity"]["emotions"] = ["happy"]  # two heads in the arrays, one emotion named
    files[CONFIG_JSON] = json.dumps(config).encode()
    with pytest.raises(ArtifactError, match="intensity model does not fit"):
        EmotionClassifier(bundle.read(write_files(tmp_path / "bad", files)))


@pytest.mark.slow
def test_a_bundle_trained_on_other_clips_is_served_with_them(synthetic_corpus, tmp_path):
    """Training writes the preprocessing it used, and serving follows it (not the library's default)."""
    from ser_core import audio
    from ser_core.training.build import train

    clips = audio.Preprocessing(clip_seconds=2.0)
    config = TrainConfig(
        features="seed", emotions=CLASSES, folds=2, augment=False, jobs=1, compare_seed=False, degradations=(),
        evaluate=False, c_grid=(1.0,), inner_folds=2, preprocessing=clips,
    )  # fmt: skip
    out = tmp_path / "two-second"
    train(synthetic_corpus, out, config, cache_dir=None, adaptation=None, intensity=None)
    assert json.loads((out / CONFIG_JSON).read_text())["preprocessing"] == clips.to_dict()
    assert "preprocessing" not in json.loads((out / CONFIG_JSON).read_text())["training"]
    clf = EmotionClassifier.load(out, jobs=1)
    assert clf.preprocessing == clips and clf.extractor.config.n_samples == 32_000
    y = np.concatenate([synthetic("angry", True, 1), synthetic("happy", False, 2)])
    timeline = clf.timeline(y, 16_000)
    assert timeline.window_seconds == 2.0 and timeline.windows[0].end == pytest.approx(2.0)
