"""The REST API over real HTTP on loopback: uvicorn in a background thread, httpx as client."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

LIMIT = 1_000_000  # bytes; small so the 413 tests stay cheap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A uvicorn server for ``app`` in a daemon thread, on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self.thread.start()
        for _ in range(400):
            if self.server.started:
                return self
            time.sleep(0.025)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def clf(bundle_dir):
    from ser_core import EmotionClassifier

    return EmotionClassifier.load(bundle_dir)


@pytest.fixture(scope="module")
def base(clf):
    from ser_core.serve.limits import Limits
    from ser_core.serve.rest import create_app

    with _Server(create_app(clf, limits=Limits(max_upload_bytes=LIMIT))) as server:
        yield server.url


def _wav(y: np.ndarray, sr: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _uploads() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ser-upload-*")}


def test_predict_matches_cli_json(base, bundle_dir, tmp_path, capsys, monkeypatch):
    from ser_core.cli import main

    data = _wav(speech_like(2.0, f0=180.0, seed=3))
    path = tmp_path / "take 1.wav"
    path.write_bytes(data)
    monkeypatch.setenv("SER_ARTIFACTS", str(bundle_dir))
    assert main(["predict", "--json", "--jobs", "1", str(path)]) == 0
    expected = json.loads(capsys.readouterr().out.strip())
    before = _uploads()
    r = httpx.post(f"{base}/v1/predict", files={"file": ("take 1.wav", data, "audio/wav")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["path"] == "take 1.wav"
    assert got["emotion"] == expected["emotion"]
    assert got["probabilities"].keys() == expected["probabilities"].keys()
    assert np.allclose(list(got["probabilities"].values()), list(expected["probabilities"].values()), atol=1e-9)
    assert _uploads() <= before  # the temporary copy is gone


def test_timeline_matches_library(base, clf, tmp_path):
    y = np.concatenate([speech_like(3.0, seed=1), np.zeros(48_000, np.float32), speech_like(3.0, seed=2)])
    path = tmp_path / "long.wav"
    path.write_bytes(_wav(y))
    expected = clf.timeline(path, window=2.0, hop=0.5).to_dict()
    r = httpx.post(
        f"{base}/v1/timeline", params={"window": 2.0, "hop": 0.5}, files={"file": ("long.wav", path.read_bytes())}
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["path"] == "long.wav" and got["window"] == 2.0 and got["hop"] == 0.5
    assert [(w["start"], w["end"], w["speech"]) for w in got["windows"]] == [
        (w["start"], w["end"], w["speech"]) for w in expected["windows"]
    ]
    assert not all(w["speech"] for w in got["windows"])  # the silent second is skipped
    assert got["summary"]["emotion"] == expected["summary"]["emotion"]


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"window": 2.0, "hop": 3.0}, "hop"), ({"window": 0.1}, "window"), ({"hop": "abc"}, "hop")],
)
def test_timeline_bad_parameters_are_422(base, params, needle):
    r = httpx.post(f"{base}/v1/timeline", params=params, files={"file": ("a.wav", _wav(speech_like(1.0)))})
    assert r.status_code == 422
    assert needle in r.json()["error"]


def test_silent_audio_is_422_with_a_sentence(base):
    r = httpx.post(f"{base}/v1/predict", files={"file": ("quiet.wav", _wav(np.zeros(16_000, np.float32)))})
    assert r.status_code == 422
    assert "silent" in r.json()["error"]


def test_non_audio_content_with_an_audio_name_is_415_and_names_the_file(base):
    r = httpx.post(f"{base}/v1/predict", files={"file": ("broken.flac", b"not really flac" * 10, "audio/flac")})
    assert r.status_code == 415
    assert "'broken.flac'" in r.json()["error"]


def test_audio_without_samples_is_422_not_415(base):
    """A real WAV header with its data cut off is audio, just unusable."""
    r = httpx.post(f"{base}/v1/predict", files={"file": ("cut.wav", _wav(speech_like(2.0))[:44])})
    assert r.status_code == 422
    assert "'cut.wav' holds no audio samples" in r.json()["error"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"files": {"file": ("notes.txt", b"hello", "text/plain")}}, "not a supported audio file"),
        ({"files": {"file": ("picture", b"\x89PNG....", "image/png")}}, "not a supported audio file"),
        ({"json": {"file": "a.wav"}}, "multipart/form-data"),
        ({"content": b"RIFF....", "headers": {"content-type": "audio/wav"}}, "multipart/form-data"),
    ],
)
def test_non_audio_is_415(base, kwargs, needle):
    r = httpx.post(f"{base}/v1/predict", **kwargs)
    assert r.status_code == 415
    assert needle in r.json()["error"]


def test_missing_file_field_is_422(base):
    r = httpx.post(f"{base}/v1/predict", files={"audio": ("a.wav", _wav(speech_like(1.0)))})
    assert r.status_code == 422
    assert "file" in r.json()["error"]


def test_too_large_upload_is_413(base):
    r = httpx.post(f"{base}/v1/predict", files={"file": ("big.wav", b"\0" * (LIMIT + 1), "audio/wav")})
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]


def test_too_large_chunked_upload_is_413_while_reading(base):
    """No Content-Length: the limit must be enforced on the bytes as they arrive."""
    head = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    )
    sent = 0

    def body():
        nonlocal sent
        yield head
        for _ in range(4 * LIMIT // 65_536):
            sent += 65_536
            yield b"\1" * 65_536

    before = _uploads()
    r = httpx.post(f"{base}/v1/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]
    assert _uploads() <= before


def test_health_model_and_openapi(base, clf):
    assert httpx.get(f"{base}/v1/health").json() == {"status": "ok"}
    model = httpx.get(f"{base}/v1/model").json()
    from ser_core import __version__

    assert model["labels"] == list(clf.labels)
    assert model["version"] == __version__
    assert model["metrics"] == json.loads(json.dumps(clf.metrics))
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/timeline", "/v1/health", "/v1/model"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/predict"]["post"]["requestBody"]["content"]


class _BlockingClassifier:
    """Stands in for the model to prove inference runs off the event loop: predict blocks until released."""

    def __init__(self, clf) -> None:
        self.labels, self.bundle, self.metrics, self.preprocessing = (
            clf.labels,
            clf.bundle,
            clf.metrics,
            clf.preprocessing,
        )
        self._clf = clf
        self.entered, self.release = threading.Event(), threading.Event()

    def predict(self, source, sample_rate=None, *, voice=None, stop=None):
        self.entered.set()
        assert self.release.wait(30)
        return self._clf.predict(source, sample_rate, voice=voice, stop=stop)


def test_event_loop_answers_while_inference_runs(clf):
    from ser_core.serve.rest import create_app

    blocking = _BlockingClassifier(clf)
    with _Server(create_app(blocking)) as server:
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(f"{server.url}/v1/predict", files={"file": ("a.wav", _wav(speech_like()))}, timeout=60)
            )
        )
        worker.start()
        assert blocking.entered.wait(30)
        health = httpx.get(f"{server.url}/v1/health", timeout=30)  # answered while predict is still blocked
        assert health.status_code == 200 and worker.is_alive()
        blocking.release.set()
        worker.join(60)
        assert result["r"].status_code == 200


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(base, tmp_path):
    """Property-based requests generated from the OpenAPI document: no 5xx."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed; pip install -r requirements-dev.txt")
    run = subprocess.run(
        [
            str(exe),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # its cache goes there, not in the repo
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


# ---------------------------------------------------------------- the budget of a request (issue 21)


def test_a_reference_upload_gives_the_library_verdict(base, clf, tmp_path):
    if not clf.adapted:
        pytest.skip("the bundle has no adapted model")
    clip, me = tmp_path / "clip.wav", tmp_path / "me.wav"
    clip.write_bytes(_wav(speech_like(3.0, seed=1)))
    me.write_bytes(_wav(speech_like(5.0, f0=200.0, seed=2)))
    expected = clf.predict(clip, voice=clf.calibrate([me]))
    files = [("file", ("clip.wav", clip.read_bytes())), ("reference", ("me.wav", me.read_bytes()))]
    r = httpx.post(f"{base}/v1/predict", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["adapted"] == "reference"
    assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


@pytest.mark.parametrize("chunk", [1, 7, 100, 10**6])
def test_parts_are_counted_across_chunks(chunk):
    from ser_core.serve.rest import _PartCounter

    request = httpx.Request(
        "POST", "http://x/", files=[("file", ("a.wav", b"--" * 50))] + [("reference", ("r.wav", b"ab"))] * 5
    )
    body = request.read()
    counter = _PartCounter(request.headers["content-type"])
    counts = [counter.count(body[i : i + chunk]) for i in range(0, len(body), chunk)]
    assert counts[-1] == 6 and counts == sorted(counts)


def _budget_of(tmp_path, seconds: float, references: list[float] = (), timeline=None):
    from ser_core.serve.limits import Budget

    budget = Budget(references=len(references))
    if timeline:
        budget.for_timeline(*timeline)
    path = tmp_path / "file.wav"
    path.write_bytes(_wav(np.zeros(int(seconds * 16_000), np.float32)))
    budget.add_recording(path)
    for i, length in enumerate(references):
        ref = tmp_path / f"r{i}.wav"
        ref.write_bytes(_wav(np.zeros(int(length * 16_000), np.float32)))
        budget.add_reference(ref)
    return budget


@pytest.mark.parametrize(
    ("seconds", "references", "timeline", "cost", "heavy"),
    [
        (3.0, [], None, 3.0, False),
        (3.0, [5.0, 5.0], None, 13.0, False),
        (3.0, [20.0, 20.0], None, 43.0, True),
        (40.0, [], None, 40.0, True),
        (10.0, [], (3.5, 1.0), 7.5 * 3.5, False),  # 7.5 windows of a clip each
        (10.0, [], (1.0, 0.1), 91 * 3.5, True),  # windows shorter than a clip cost one clip each
    ],
)
def test_the_budget_counts_seconds_judged_from_headers(tmp_path, seconds, references, timeline, cost, heavy):
    budget = _budget_of(tmp_path, seconds, references, timeline)
    assert budget.seconds == pytest.approx(cost) and budget.heavy == heavy


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_references": -1}, "max_references"),
        ({"light_seconds": 0}, "light_seconds"),
        ({"max_reference_seconds": 0}, "max_reference_seconds"),
    ],
)
def test_new_limits_are_validated(kwargs, needle):
    from ser_core.errors import ParameterError
    from ser_core.serve.limits import Limits

    with pytest.raises(ParameterError, match=needle):
        Limits(**kwargs)
