"""The verified bundle: damaged, swapped or inconsistent files give one clear ArtifactError."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ser_core import EMOTIONS, EmotionClassifier
from ser_core import bundle as art
from ser_core.errors import ArtifactError, AudioError


@pytest.fixture
def bundle(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle that a test may damage."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def manifest(folder: Path) -> dict:
    return json.loads((folder / art.MANIFEST).read_text())


def replace_file(folder: Path, name: str, data: bytes) -> None:
    """Swap a file and record its new checksum, as an attacker with write access could."""
    (folder / name).write_bytes(data)
    m = manifest(folder)
    m["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / art.MANIFEST).write_text(json.dumps(m))


def test_loads_and_names_seven_labels(bundle):
    loaded = art.read(bundle)
    assert loaded.labels == EMOTIONS
    assert loaded.mean.shape == loaded.scale.shape == (len(loaded.feature_names),)
    assert EmotionClassifier.load(bundle).labels == EMOTIONS


def test_missing_folder(tmp_path):
    with pytest.raises(ArtifactError, match="No artifacts folder at .*nowhere"):
        art.read(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [art.MANIFEST, *art.REQUIRED])
def test_missing_file_is_named(bundle, name):
    (bundle / name).unlink()
    with pytest.raises(ArtifactError, match=f"'{name}' is missing"):
        EmotionClassifier.load(bundle)


@pytest.mark.parametrize("name", [*art.REQUIRED, art.METRICS_JSON])
def test_corrupt_file_fails_its_checksum(bundle, name):
    data = bytearray((bundle / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"'{name}' in .* does not match its checksum"):
        EmotionClassifier.load(bundle)


def test_checksum_mismatch_in_manifest(bundle):
    m = manifest(bundle)
    m["files"][art.LABELS_TXT] = "0" * 64
    (bundle / art.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="'labels.txt' .* does not match its checksum"):
        art.read(bundle)


def test_file_not_in_manifest(bundle):
    m = manifest(bundle)
    del m["files"][art.FEATURES_NPZ]
    (bundle / art.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="'features.npz' is not listed in manifest.json"):
        art.read(bundle)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "'manifest.json' is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"format_version": 2, "files": {}}', "format version 2, this library reads version 1"),
        ('{"files": {}}', "format version None"),
        ('{"format_version": 1}', "lists no files"),
    ],
    ids=["not-json", "not-object", "newer-version", "no-version", "no-files"],
)
def test_manifest_rule(bundle, content, match):
    (bundle / art.MANIFEST).write_text(content)
    with pytest.raises(ArtifactError, match=match):
        art.read(bundle)


def test_labels_differ_from_config(bundle):
    replace_file(bundle, art.LABELS_TXT, "\n".join(EMOTIONS[:6]).encode() + b"\n")
    with pytest.raises(ArtifactError, match="'labels.txt' .* lists 6 labels that differ from config.json"):
        art.read(bundle)


def test_label_count_differs_from_model(bundle):
    labels = list(EMOTIONS[:6])
    config = json.loads((bundle / art.CONFIG_JSON).read_text())
    config["labels"] = labels
    replace_file(bundle, art.CONFIG_JSON, json.dumps(config).encode())
    replace_file(bundle, art.LABELS_TXT, "\n".join(labels).encode())
    with pytest.raises(ArtifactError, match="has 7 outputs but labels.txt lists 6 labels"):
        EmotionClassifier.load(bundle)


def test_config_not_json(bundle):
    replace_file(bundle, art.CONFIG_JSON, b"\xff\xfe not json")
    with pytest.raises(ArtifactError, match="'config.json' is not valid JSON"):
        art.read(bundle)


def test_unusable_feature_config(bundle):
    config = json.loads((bundle / art.CONFIG_JSON).read_text())
    config["features"] = {"n_fft": "large"}
    replace_file(bundle, art.CONFIG_JSON, json.dumps(config).encode())
    with pytest.raises(ArtifactError, match="feature configuration .* is unusable"):
        EmotionClassifier.load(bundle)


def test_model_not_tflite(bundle):
    replace_file(bundle, art.MODEL_TFLITE, b"TFL3" + bytes(1000))
    with pytest.raises(ArtifactError, match="not a valid TensorFlow Lite model"):
        EmotionClassifier.load(bundle)


def test_features_missing_array(bundle):
    with np.load(bundle / art.FEATURES_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "scale"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    replace_file(bundle, art.FEATURES_NPZ, buffer.getvalue())
    with pytest.raises(ArtifactError, match="lacks the 'scale' array"):
        art.read(bundle)


def test_feature_count_mismatch(bundle):
    with np.load(bundle / art.FEATURES_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["mean"] = arrays["mean"][:-1]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    replace_file(bundle, art.FEATURES_NPZ, buffer.getvalue())
    with pytest.raises(ArtifactError, match="disagree on the feature count"):
        EmotionClassifier.load(bundle)


class Payload:
    """Unpickling this creates ``marker``: proof that a loader executed code from a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickled_npz(marker: Path, arrays: dict[str, np.ndarray]) -> bytes:
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(str(marker))
    buffer = io.BytesIO()
    np.savez(buffer, **{**arrays, "mean": evil})
    return buffer.getvalue()


def test_payload_would_run_if_pickle_were_allowed(tmp_path):
    """Control for the test below: the crafted archive does execute code under allow_pickle=True."""
    marker = tmp_path / "pwned"
    with np.load(io.BytesIO(pickled_npz(marker, {"scale": np.ones(3)})), allow_pickle=True) as npz:
        npz["mean"]
    assert marker.exists()


def test_swapped_npz_with_pickle_is_refused_not_executed(bundle, tmp_path):
    marker = tmp_path / "pwned"
    with np.load(bundle / art.FEATURES_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files}
    replace_file(bundle, art.FEATURES_NPZ, pickled_npz(marker, arrays))  # checksum is correct
    with pytest.raises(ArtifactError, match="'features.npz' .* is not a plain array archive"):
        EmotionClassifier.load(bundle)
    assert not marker.exists()


def test_no_file_in_the_bundle_is_a_pickle(bundle_dir):
    for path in bundle_dir.iterdir():
        head = path.read_bytes()[:2]
        assert head not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"), path.name


# ---------------------------------------------------------------- write_files


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != art.MANIFEST}


def test_typed_parts_write_back_to_the_same_files(bundle_dir, tmp_path):
    """read() and write() are inverses: the parts of the shipped bundle, written again, are its files."""
    loaded = art.read(bundle_dir)
    reports = {n: (bundle_dir / n).read_bytes() for n in (art.MODEL_CARD_MD, art.CONFUSION_PNG)}
    out = art.write(tmp_path / "again", loaded, keras=(bundle_dir / art.MODEL_KERAS).read_bytes(), reports=reports)
    written, shipped = manifest(out)["files"], manifest(bundle_dir)["files"]
    assert written.keys() == shipped.keys()
    assert {n for n in written if written[n] != shipped[n]} <= {art.FEATURES_NPZ}  # a zip stamps the time
    with np.load(out / art.FEATURES_NPZ) as new, np.load(bundle_dir / art.FEATURES_NPZ) as old:
        assert new.files == old.files
        assert all(np.array_equal(new[k], old[k]) for k in old.files)


def test_write_then_load_round_trip(bundle_dir, tmp_path):
    files = bundle_files(bundle_dir)
    out = art.write_files(tmp_path / "new", files)
    loaded = art.read(out)
    assert loaded.labels == EMOTIONS
    assert manifest(out)["files"] == {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    assert manifest(out)["format_version"] == art.FORMAT_VERSION


def test_write_replaces_previous_bundle(bundle_dir, tmp_path):
    out = tmp_path / "out"
    art.write_files(out, bundle_files(bundle_dir))
    files = bundle_files(bundle_dir)
    files["metrics.json"] = b'{"accuracy": 0.5}'
    art.write_files(out, files)
    assert art.read(out).metrics == {"accuracy": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left


def test_write_failure_leaves_previous_bundle_intact(bundle, tmp_path, monkeypatch):
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    files = bundle_files(bundle)
    files["config.json"] = b'{"labels": []}'
    calls = {"n": 0}
    real_write = Path.write_bytes

    def failing_write(self: Path, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError, match="No space left"):
        art.write_files(bundle, files)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert art.read(bundle).labels == EMOTIONS


def test_write_refuses_incomplete_bundle(tmp_path):
    with pytest.raises(ArtifactError, match="needs \\['model.tflite'"):
        art.write_files(tmp_path / "x", {"labels.txt": b"a\n"})
    assert not (tmp_path / "x").exists()


def with_preprocessing(bundle: Path, **settings: object) -> Path:
    config = json.loads((bundle / art.CONFIG_JSON).read_text())
    config["preprocessing"] = {**config["preprocessing"], **settings}
    replace_file(bundle, art.CONFIG_JSON, json.dumps(config).encode())
    return bundle


def test_shipped_preprocessing_is_read_back(bundle_dir):
    from ser_core import audio

    assert EmotionClassifier.load(bundle_dir).preprocessing == audio.PREPROCESSING


def test_other_preprocessing_settings_are_honoured(bundle, speech):
    """A bundle trained to need 2.5 s of speech refuses 1.5 s; the shipped settings judge it."""
    assert EmotionClassifier.load(bundle).predict(speech, 16_000).emotion
    clf = EmotionClassifier.load(with_preprocessing(bundle, min_speech_seconds=2.5))
    assert clf.preprocessing.min_speech_seconds == 2.5
    with pytest.raises(AudioError, match="record at least 2.5 s of speech"):
        clf.predict(speech, 16_000)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"sample_rate": 22_050}, "prepares audio at 16000 Hz, not 22050 Hz"),
        ({"n_samples": 48_000}, "n_samples 48000 disagrees"),
        ({"dither": True}, r"Unknown preprocessing settings \['dither'\]"),
        ({"clip_seconds": 3.0, "n_samples": 48_000}, "expect clips of 56000 samples but its preprocessing makes 48000"),
    ],
)
def test_preprocessing_that_cannot_be_honoured_is_refused(bundle, settings, match):
    with pytest.raises(ArtifactError, match=match):
        EmotionClassifier.load(with_preprocessing(bundle, **settings))


def test_missing_preprocessing_is_refused(bundle):
    config = json.loads((bundle / art.CONFIG_JSON).read_text())
    del config["preprocessing"]
    replace_file(bundle, art.CONFIG_JSON, json.dumps(config).encode())
    with pytest.raises(ArtifactError, match="preprocessing settings .* are unusable"):
        EmotionClassifier.load(bundle)


def _damaged(kind: str, folder: Path) -> str:
    """Damage the bundle in one of the ways it can fail to load; returns words of the sentence."""
    if kind == "missing":
        shutil.rmtree(folder)
        return "No artifacts folder"
    if kind.startswith("unreadable"):  # permissions cannot stop root; a folder in a file's place can
        name = art.MANIFEST if kind.endswith("manifest") else art.MODEL_TFLITE
        (folder / name).unlink()
        (folder / name).mkdir()
        return f"'{name}' in {folder} cannot be read"
    if kind == "corrupt":
        (folder / art.MODEL_TFLITE).write_bytes(b"\0" * 64)
        return "checksum"
    m = manifest(folder)
    m["format_version"] = 999
    (folder / art.MANIFEST).write_text(json.dumps(m))
    return "format version"


@pytest.mark.parametrize("kind", ["missing", "unreadable-manifest", "unreadable-model", "corrupt", "version"])
def test_every_loading_failure_is_one_sentence_in_every_interface(bundle, kind, tmp_path):
    """predict, timeline, serve and the demo each print one line and exit 1, never a traceback."""
    import subprocess
    import sys

    import soundfile as sf
    from conftest import REPO, free_port, speech_like

    sf.write(tmp_path / "a.wav", speech_like(), 16_000)
    words = _damaged(kind, bundle)
    with pytest.raises(ArtifactError, match=words):
        art.read(bundle)
    commands = [
        ["-m", "ser_core", "predict", "--artifacts", str(bundle), "--report", str(tmp_path / "r.jsonl"), "a.wav"],
        ["-m", "ser_core", "timeline", "--artifacts", str(bundle), "a.wav"],
        ["-m", "ser_core", "serve", "--artifacts", str(bundle), "--port", str(free_port())],
        [str(REPO / "demo.py"), "--artifacts", str(bundle), "--port", str(free_port())],
    ]
    for args in commands:
        run = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, (args, run.stderr)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (args, run.stderr)
