"""Hostile traffic (issue 14): every request's work and memory bounded, nothing left behind."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from conftest import REPO, free_port, speech_like
from corpus import write_hostile, write_long_recording
from test_server import _Server, _wav

from ser_core.serve.limits import Limits


class _Watched:
    """The real classifier, counting the analyses that reach it and able to hold one until released
    (``hold``), recording whether its stop event was set meanwhile."""

    def __init__(self, clf, *, hold: bool = False) -> None:
        self.labels, self.bundle, self.metrics, self.preprocessing = (
            clf.labels,
            clf.bundle,
            clf.metrics,
            clf.preprocessing,
        )
        self._clf = clf
        self.hold = hold
        self.calls = 0
        self.entered, self.release, self.stopped = threading.Event(), threading.Event(), threading.Event()

    def _enter(self, stop) -> None:
        self.calls += 1
        self.entered.set()
        if self.hold:
            while not self.release.is_set():
                if stop is not None and stop.wait(0.01):
                    self.stopped.set()
                    break

    def predict(self, source, sample_rate=None, *, voice=None, stop=None):
        self._enter(stop)
        return self._clf.predict(source, sample_rate, voice=voice, stop=stop)

    def timeline(self, source, sample_rate=None, *, window, hop, voice=None, stop=None):
        self._enter(stop)
        return self._clf.timeline(source, sample_rate, window=window, hop=hop, voice=voice, stop=stop)


def _uploads(folder: Path) -> list[Path]:
    return list(folder.glob("ser-upload-*"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return write_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def clf(bundle_dir):
    from ser_core import EmotionClassifier

    return EmotionClassifier.load(bundle_dir)


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/timeline"])
def test_hostile_corpus_is_refused_before_any_analysis(clf, hostile, route, tmp_path, monkeypatch):
    """Each attack gets its status and one sentence; refused ones never reach the model, and no
    upload is left on disk."""
    from ser_core.serve.rest import create_app

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    watched = _Watched(clf)
    with _Server(create_app(watched)) as server:
        for item in hostile:
            before = watched.calls
            with item.path.open("rb") as f:
                r = httpx.post(f"{server.url}{route}", files={"file": (item.path.name, f)}, timeout=60)
            assert r.status_code == item.status, (item.name, r.text)
            if item.status != 200:
                error = r.json()["error"]
                assert item.needle in error and f"'{item.path.name}'" in error, item.name
                assert error.count(". ") == 0 and "Traceback" not in error, item.name
                assert watched.calls == before, f"{item.name} reached the model"
    assert _uploads(tmp_path) == []


def test_an_hour_long_flac_is_refused_from_its_header(hostile, monkeypatch):
    """An hour-long FLAC is refused from its header: no block of it is decoded."""
    from ser_core import audio
    from ser_core.errors import AudioError

    item = next(i for i in hostile if i.path.name == "hour-level.flac")
    decoded = []
    original = audio._resampled
    monkeypatch.setattr(audio, "_resampled", lambda blocks: original(b for b in blocks if not decoded.append(b)))
    with pytest.raises(AudioError, match="longer than 10 minutes"):
        audio.load(item.path, max_seconds=600)
    assert decoded == []


def test_timeline_with_too_many_windows_is_refused_up_front(clf, tmp_path):
    from ser_core.serve.rest import create_app

    watched = _Watched(clf)
    with _Server(create_app(watched, limits=Limits(max_windows=50))) as server:
        r = httpx.post(
            f"{server.url}/v1/timeline",
            params={"window": 1.0, "hop": 0.1},
            files={"file": ("a.wav", _wav(speech_like(10.0)))},
            timeout=60,
        )
        assert r.status_code == 422
        error = r.json()["error"]
        assert "more than the 50 allowed" in error and watched.calls == 0
        hop = float(re.search(r"hop of at least ([0-9.]+) s", error).group(1))
        ok = httpx.post(
            f"{server.url}/v1/timeline",
            params={"window": 1.0, "hop": hop},
            files={"file": ("a.wav", _wav(speech_like(10.0)))},
            timeout=60,
        )
        assert ok.status_code == 200 and len(ok.json()["windows"]) <= 50  # the advice works


def _post_in_thread(url: str, route: str, seconds: float = 2.0, **params: float) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["r"] = httpx.post(
                f"{url}{route}", params=params, files={"file": ("a.wav", _wav(speech_like(seconds)))}, timeout=60
            )
        except httpx.HTTPError as e:
            out["e"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_full_server_answers_503_with_retry_after(clf):
    from ser_core.serve.rest import create_app

    held = _Watched(clf, hold=True)
    with _Server(create_app(held, limits=Limits(slots=1, max_waiting=0))) as server:
        thread, first = _post_in_thread(server.url, "/v1/predict")
        assert held.entered.wait(30)
        r = httpx.post(f"{server.url}/v1/predict", files={"file": ("b.wav", _wav(speech_like()))}, timeout=60)
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert int(r.headers["retry-after"]) > 0
        held.release.set()
        thread.join(60)
        assert first["r"].status_code == 200


def test_long_timelines_cannot_take_every_slot(clf):
    """Two slots: a held timeline takes the one timelines may use; a second timeline waits (and
    gives up with 503), while a prediction is served at once."""
    from ser_core.serve.rest import create_app

    held = _Watched(clf, hold=True)
    with _Server(create_app(held, limits=Limits(slots=2, max_wait_seconds=0.5))) as server:
        thread, first = _post_in_thread(server.url, "/v1/timeline")
        assert held.entered.wait(30)
        second = httpx.post(f"{server.url}/v1/timeline", files={"file": ("b.wav", _wav(speech_like()))}, timeout=60)
        assert second.status_code == 503
        held.hold = False  # the next analysis goes straight through
        r = httpx.post(f"{server.url}/v1/predict", files={"file": ("c.wav", _wav(speech_like()))}, timeout=60)
        assert r.status_code == 200
        held.release.set()
        thread.join(60)
        assert first["r"].status_code == 200


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "ser-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_analysis_stops_when_its_client_leaves(clf):
    from ser_core.serve.rest import create_app

    held = _Watched(clf, hold=True)
    with _Server(create_app(held)) as server:
        body, kind = _multipart("a.wav", _wav(speech_like()))
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            head = (
                f"POST /v1/timeline HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            assert held.entered.wait(30)
        assert held.stopped.wait(30), "the analysis went on after the client left"


def test_library_analysis_stops_at_the_next_window(classifier):
    from ser_core.errors import Cancelled

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        classifier.timeline(speech_like(20.0), 16_000, hop=0.5, stop=stop)
    with pytest.raises(Cancelled):
        classifier.predict(speech_like(90.0), 16_000, stop=stop)


def _started(args: list[str], tmp: Path, ready_url: str) -> subprocess.Popen:
    """``python ARGS`` in the repository with its temp folder in ``tmp``, once ``ready_url`` answers."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    env.pop("GRADIO_TEMP_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    for _ in range(900):  # bounded: up to 90 s for the model (and Gradio) to load
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{args} did not start: {proc.stderr.read()}")


def test_sigterm_stops_a_busy_server_and_answers_its_request(tmp_path):
    """A request that would take hours of CPU is in flight: SIGTERM answers it 503 (or closes it)
    and the server exits, leaving no upload behind."""
    recording = write_long_recording(tmp_path / "ten-minutes.wav", 600.0)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _started(
        ["-m", "ser_core", "serve", "--port", str(port), "--max-windows", "100000"], tmp, f"{url}/v1/health"
    )
    try:
        out: dict = {}

        def post() -> None:
            try:
                with recording.open("rb") as f:
                    out["r"] = httpx.post(
                        f"{url}/v1/timeline",
                        params={"window": 60, "hop": 0.05},  # 12,000 windows of 60 clips each
                        files={"file": ("ten-minutes.wav", f)},
                        timeout=120,
                    )
            except httpx.HTTPError as e:
                out["e"] = e

        thread = threading.Thread(target=post, daemon=True)
        thread.start()
        for _ in range(600):  # bounded: until the upload is on disk
            if _uploads(tmp):
                break
            time.sleep(0.05)
        assert _uploads(tmp), "the upload never arrived"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log = proc.stderr.read()
        assert code in (0, -signal.SIGTERM) and "Finished server process" in log, log  # uvicorn re-raises the signal
        thread.join(60)
        assert "e" in out or out["r"].status_code == 503
        assert _uploads(tmp) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_start_up_sweeps_uploads_of_killed_servers(tmp_path):
    from ser_core.serve.rest import STALE_UPLOAD_SECONDS, sweep_stale_uploads

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folders = {
        "dead": tmp_path / f"ser-upload-{int(dead.stdout)}-abc",
        "alive": tmp_path / f"ser-upload-{os.getpid()}-def",
        "old": tmp_path / "ser-upload-ghi",
        "recent": tmp_path / "ser-upload-jkl",
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "x.wav").write_bytes(b"RIFF")
    old = time.time() - STALE_UPLOAD_SECONDS - 60
    os.utime(folders["old"], (old, old))
    assert sweep_stale_uploads(tmp_path) == 2
    assert {p.name for p in tmp_path.iterdir()} == {folders["alive"].name, folders["recent"].name}


# ---------------------------------------------------------------- the demo


def test_timeline_csv_is_written_where_gradio_serves_and_deletes_it(classifier, tmp_path, monkeypatch):
    import gradio as gr
    from gradio.route_utils import delete_files_created_by_app

    from ser_core.serve import gradio_app as app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    path = app.write_csv(classifier.timeline(speech_like(8.0), 16_000))
    assert Path(path).parent == tmp_path / "cache" and Path(path).read_text().startswith("start,end")
    with gr.Blocks() as demo:
        csv_file = gr.File()
    assert csv_file.move_resource_to_block_cache(path) == path  # served as it is: no copy left elsewhere
    delete_files_created_by_app(demo, age=None)  # what Gradio does on its schedule and when it stops
    assert not Path(path).exists()


def test_demo_sweeps_a_previous_run_and_leaves_nothing_after_a_clean_stop(tmp_path):
    """Start the demo with a stale upload in its cache, send it requests, stop it with SIGTERM:
    no file remains in the temp folder."""
    from ser_core.serve import gradio_app as app

    port = free_port()
    tmp = tmp_path / "tmp"
    stale = tmp / f"{app.CACHE_PREFIX}{port}" / "0123abcd" / "old-upload.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"RIFF")
    url = f"http://127.0.0.1:{port}"
    proc = _started(["demo.py", "--port", str(port)], tmp, url)
    try:
        from gradio_client import Client, handle_file

        assert not stale.exists()
        client = Client(url, verbose=False, download_files=False)
        for i in range(3):
            clip = tmp_path / f"clip{i}.wav"
            clip.write_bytes(_wav(speech_like(2.0 + i, 16_000)))
            assert client.predict(handle_file(str(clip)), api_name="/predict")["emotion"]
        assert [p for p in tmp.rglob("*") if p.is_file()], "the uploads should be cached while it runs"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        left = [p for p in tmp.rglob("*") if p.is_file()]
        assert left == [], proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rest_load_with_hostile_uploads_beside_it(clf, hostile):
    """Bounded load on loopback: 16 clients x 6 predictions of distinct clips while two clients
    keep sending hour-long files; every clip gets its own answer, every hour file its 422."""
    from concurrent.futures import ThreadPoolExecutor

    from ser_core.serve.rest import create_app

    clips = {f"clip{i}.wav": _wav(speech_like(2.0 + (i % 5) * 0.5, seed=i)) for i in range(96)}
    expected = {name: clf.predict(*sf.read(io.BytesIO(data), dtype="float32")) for name, data in clips.items()}
    hour = next(i for i in hostile if i.path.name == "hour-level.flac").path.read_bytes()
    with _Server(create_app(clf)) as server:
        done = threading.Event()

        def attack() -> list[int]:
            statuses = []
            with httpx.Client(timeout=60) as http:
                while not done.is_set() and len(statuses) < 200:  # bounded
                    statuses.append(http.post(f"{server.url}/v1/predict", files={"file": ("h.flac", hour)}).status_code)
            return statuses

        def visitor(names: list[str]) -> list[tuple[str, httpx.Response]]:
            with httpx.Client(timeout=120) as http:
                return [(n, http.post(f"{server.url}/v1/predict", files={"file": (n, clips[n])})) for n in names]

        names = list(clips)
        with ThreadPoolExecutor(18) as pool:
            attackers = [pool.submit(attack) for _ in range(2)]
            visitors = [pool.submit(visitor, names[i::16]) for i in range(16)]
            answers = [a for v in visitors for a in v.result()]
            done.set()
            hostile_statuses = [s for a in attackers for s in a.result()]
    assert len(answers) == len(clips)
    for name, r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["path"] == name and body["emotion"] == expected[name].emotion
        assert body["probabilities"] == pytest.approx(expected[name].probabilities, abs=1e-5)
    assert hostile_statuses and set(hostile_statuses) == {422}
