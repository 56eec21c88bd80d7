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
import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, free_port, speech_like
from corpus import wav_header, write_hostile, write_long_recording
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

    def utterances(self, source, sample_rate=None, *, detector, voice=None, stop=None):
        self._enter(stop)
        return self._clf.utterances(source, sample_rate, detector=detector, voice=voice, stop=stop)

    def calibrate(self, recordings, sample_rate=None, *, voice=None, stop=None):
        self._enter(stop)
        return self._clf.calibrate(recordings, sample_rate, voice=voice, stop=stop)

    def adapt(self, sources, sample_rate=None, *, voice=None, stop=None):
        self._enter(stop)
        return self._clf.adapt(sources, sample_rate, voice=voice, stop=stop)

    def __getattr__(self, name: str):  # what involves no analysis (check_voice, voice): the classifier's own
        return getattr(self._clf, name)


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


# heavy requests by their cost in seconds of audio, whatever the route: 40 s of speech, or 2 s with
# 40 s of references, or a 20 s timeline (17 windows of 3.5 s), each more than LIGHT_SECONDS (30 s)
HEAVY = {
    "a 40 s prediction": ("/v1/predict", {}, 40.0, 0),
    "a 2 s prediction with 40 s of references": ("/v1/predict", {}, 2.0, 2),
    "a 20 s timeline": ("/v1/timeline", {}, 20.0, 0),
    "40 s of utterances": ("/v1/segments", {"detector": "energy"}, 40.0, 0),
    "a voice learned from 40 s of recordings": ("/v1/voice", {}, 40.0, 0),
}


def _fields(seconds: float, references: int = 0, reference_seconds: float = 20.0, *, name: str = "file") -> list:
    """A recording of ``seconds`` in the field ``name`` and ``references`` of ``reference_seconds``."""
    return [(name, ("a.wav", _wav(speech_like(seconds, seed=1))))] + [
        ("reference", (f"r{i}.wav", _wav(speech_like(reference_seconds, seed=10 + i)))) for i in range(references)
    ]


def _field(route: str) -> str:
    """The field a route's recording goes in."""
    return "recording" if route == "/v1/voice" else "file"


@pytest.mark.parametrize("heavy", HEAVY)
def test_heavy_requests_by_their_cost_cannot_take_every_slot(clf, heavy):
    """Two slots: a held heavy request (heavy by the seconds of audio it asks for, whatever the
    route) takes the one heavy requests may use; a second waits (and gives up with 503), while a
    3 s clip, light on any route, is served at once."""
    from ser_core.serve.rest import create_app

    route, params, seconds, references = HEAVY[heavy]
    if (references or route == "/v1/voice") and not clf.adapted:
        pytest.skip("the bundle has no adapted model")
    held = _Watched(clf, hold=True)
    with _Server(create_app(held, limits=Limits(slots=2, max_wait_seconds=0.5))) as server:
        out: dict = {}
        fields = _fields(seconds, references, name=_field(route))
        thread = threading.Thread(
            target=lambda: out.update(r=httpx.post(f"{server.url}{route}", params=params, files=fields, timeout=120)),
            daemon=True,
        )
        thread.start()
        assert held.entered.wait(60)
        second = httpx.post(f"{server.url}{route}", params=params, files=fields, timeout=60)
        assert second.status_code == 503 and "busy" in second.json()["error"]
        held.hold = False  # the next analyses go straight through
        for light_route in ("/v1/predict", "/v1/timeline"):
            r = httpx.post(f"{server.url}{light_route}", files={"file": ("c.wav", _wav(speech_like(3.0)))}, timeout=60)
            assert r.status_code == 200, r.text
        held.release.set()
        thread.join(120)
        assert out["r"].status_code == 200, out["r"].text


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
        assert not (tmp / f"{app.CACHE_PREFIX}{port}").exists(), "the empty cache folder was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rest_load_with_hostile_uploads_beside_it(clf, hostile):
    """Bounded load on loopback: 16 clients x 6 predictions of distinct clips, half of them with a
    reference recording and a quarter with a saved voice, while two clients keep sending hour-long
    files and over-budget references; every clip gets its own answer (relative to its reference or
    voice when it has one), every attack its 422."""
    from concurrent.futures import ThreadPoolExecutor

    from ser_core.serve.rest import create_app

    clips = {f"clip{i}.wav": _wav(speech_like(2.0 + (i % 5) * 0.5, seed=i)) for i in range(96)}
    references = {name: _wav(speech_like(4.0, f0=120.0 + i, seed=200 + i)) for i, name in enumerate(clips)}
    referenced = set(list(clips)[1::2]) if clf.adapted else set()
    voiced = set(list(clips)[::4]) if clf.adapted else set()
    voices = {  # saved voices: one reference each, and a few recordings
        name: clf.adapt(
            [speech_like(2.5, f0=130.0, seed=400 + i)],
            16_000,
            voice=clf.calibrate([speech_like(4.0, f0=125.0 + i, seed=300 + i)], 16_000),
        )
        for i, name in enumerate(sorted(voiced))
    }

    def expect(name: str):
        voice = clf.calibrate(*sf.read(io.BytesIO(references[name]), dtype="float32")) if name in referenced else None
        voice = voices.get(name, voice)
        return clf.predict(*sf.read(io.BytesIO(clips[name]), dtype="float32"), voice=voice)

    expected = {name: expect(name) for name in clips}
    hour = next(i for i in hostile if i.path.name == "hour-level.flac").path.read_bytes()
    attacks = [
        [("file", ("h.flac", hour))],
        [("file", ("c.wav", clips["clip0.wav"]))] + [("reference", ("r.flac", _constant_flac(119.0)))] * 2,
        [("file", ("c.wav", clips["clip0.wav"]))] + [("reference", ("r.wav", b"x"))] * 60,
    ]
    with _Server(create_app(clf)) as server:
        done = threading.Event()

        def attack() -> list[int]:
            statuses = []
            with httpx.Client(timeout=60) as http:
                while not done.is_set() and len(statuses) < 200:  # bounded
                    fields = attacks[len(statuses) % len(attacks)]
                    statuses.append(http.post(f"{server.url}/v1/predict", files=fields).status_code)
            return statuses

        def fields(name: str) -> list:
            reference = [("reference", ("me.wav", references[name]))] if name in referenced else []
            voice = [("voice", (None, voices[name].to_json()))] if name in voiced else []
            return [("file", (name, clips[name]))] + reference + voice

        def visitor(names: list[str]) -> list[tuple[str, httpx.Response]]:
            with httpx.Client(timeout=120) as http:
                return [(n, http.post(f"{server.url}/v1/predict", files=fields(n))) for n in names]

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
        assert body["adapted"] == ("reference" if name in referenced | voiced else None)
        assert body["probabilities"] == pytest.approx(expected[name].probabilities, abs=1e-5)
    assert hostile_statuses and set(hostile_statuses) == {422}


# ---------------------------------------------------------------- references and the budget (issue 21)


def _constant_flac(seconds: float) -> bytes:
    """``seconds`` at a constant level as FLAC: a few kilobytes, however long its header says it is."""
    buffer = io.BytesIO()
    sf.write(buffer, np.full(int(seconds * 16_000), 0.3, np.float32), 16_000, format="FLAC")
    return buffer.getvalue()


def _headerless_webm(y: np.ndarray) -> bytes:
    """Opus in WebM written as a browser's recorder writes it, as it goes: no length in its header."""
    import av

    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def write(self, b) -> int:
            self.data += b
            return len(b)

    sink = Sink()
    with av.open(sink, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=48_000)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, np.float32)[None], format="flt", layout="mono")
        frame.sample_rate = 16_000
        for chunk in (*resampler.resample(frame), *resampler.resample(None)):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return bytes(sink.data)


@pytest.fixture
def decoded(monkeypatch) -> list:
    """Every block any decoder yields in this process from now on."""
    from ser_core import audio

    blocks: list = []
    original = audio._resampled
    monkeypatch.setattr(audio, "_resampled", lambda raw: original(b for b in raw if not blocks.append(b)))
    return blocks


def _refused_uploads(clf) -> dict[str, tuple[str, list, int, str]]:
    """Requests a budget refuses from headers alone: (route, multipart fields, status, words)."""
    from ser_core import Voice

    clip = ("file", ("clip.wav", _wav(speech_like(3.0))))
    short, long = _wav(speech_like(4.0, seed=2)), _constant_flac(119.0)
    foreign = ("voice", (None, Voice("0123456789abcdef").to_json()))
    voices = {  # the saved voice sent with a request, and POST /v1/voice (issue 20)
        "a voice over its limit": (
            "/v1/segments",
            [clip, ("voice", ("v.json", b"{" + b" " * 300_000 + b"}")), ("reference", ("r.wav", short))],
            413,
            "The voice sent is larger than the 256 kB allowed;",
        ),
        "a voice of another model with references": (
            "/v1/predict",
            [clip, foreign, ("reference", ("r.wav", short))],
            422,
            "another model's features" if clf.adapted else "no adapted variant",
        ),
        "a damaged voice": ("/v1/timeline", [clip, ("voice", (None, '{"format": 2}'))], 422, "damaged"),
    }
    if clf.adapted:
        voices |= {
            "17 recordings to learn from": (
                "/v1/voice",
                [("recording", (f"r{i}.wav", short)) for i in range(17)],
                422,
                "17 recordings, more than the 16 allowed",
            ),
            "17 references to learn from": (
                "/v1/voice",
                [("reference", (f"r{i}.wav", short)) for i in range(17)],
                422,
                "17 reference recordings, more than the 16 allowed",
            ),
            "40 recording fields": (
                "/v1/voice",
                [("recording", (f"r{i}.wav", b"x")) for i in range(40)],
                422,
                "more than 33 parts",
            ),
            "recordings of 12 minutes to learn from": (
                "/v1/voice",
                [("recording", (f"r{i}.flac", _constant_flac(360.0))) for i in range(2)],
                422,
                "The recordings last 720 s, more than the 600 s allowed in all;",
            ),
            "an hour-long recording to learn from": (
                "/v1/voice",
                [("recording", ("hour.flac", _constant_flac(3600))), ("reference", ("r.wav", short))],
                422,
                "longer than 10 minutes",
            ),
            "references of 238 s to learn from": (
                "/v1/voice",
                [("recording", ("r.wav", short)), ("reference", ("a.flac", long)), ("reference", ("b.flac", long))],
                422,
                "The reference audio lasts 238 s, more than the 120 s allowed",
            ),
            "a voice of another model to add to": (
                "/v1/voice",
                [("recording", ("r.wav", short)), foreign],
                422,
                "another",
            ),
        }
    return voices | {
        "17 references": (
            "/v1/predict",
            [clip] + [("reference", (f"r{i}.wav", short)) for i in range(17)],
            422,
            "17 reference recordings, more than the 16 allowed",
        ),
        "60 references of 119 s": (
            "/v1/predict",
            [clip] + [("reference", (f"r{i}.flac", long)) for i in range(60)],
            422,
            "more than 18 parts",
        ),
        "1,000 reference fields": (
            "/v1/timeline",
            [clip] + [("reference", (f"r{i}.wav", b"x")) for i in range(1000)],
            422,
            "more than 18 parts",
        ),
        "two references of 119 s": (
            "/v1/segments",
            [clip, ("reference", ("a.flac", long)), ("reference", ("b.flac", long))],
            422,
            "The reference audio lasts 238 s, more than the 120 s allowed",
        ),
        "a reference claiming 65,535 channels": (
            "/v1/predict",
            [
                clip,
                (
                    "reference",
                    ("c.wav", wav_header(rate=16_000, channels=65_535, bits=8, data_bytes=len(short)) + short),
                ),
            ],
            422,
            "claims 65535 channels",
        ),
        "an hour-long recording with a reference": (
            "/v1/timeline",
            [("file", ("hour.flac", _constant_flac(3600))), ("reference", ("r.wav", short))],
            422,
            "longer than 10 minutes",
        ),
        "text as a reference": (
            "/v1/predict",
            [clip, ("reference", ("notes.wav", b"not audio\n" * 50))],
            415,
            "could not be decoded",
        ),
    }


def test_over_budget_requests_are_refused_from_headers_before_any_wait(clf, decoded, tmp_path, monkeypatch):
    """While the only slot is held and no request may wait, each over-budget request still gets
    its own sentence (never the 503 of a request that waited), no block of any upload is
    decoded, the model is never asked, and no upload is left on disk."""
    from ser_core.serve.rest import create_app

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    held = _Watched(clf, hold=True)
    with _Server(create_app(held, limits=Limits(slots=1, max_waiting=0))) as server:
        thread, first = _post_in_thread(server.url, "/v1/predict")
        assert held.entered.wait(30)
        decoded.clear()  # the held request's own blocks
        for name, (route, fields, status, words) in _refused_uploads(clf).items():
            r = httpx.post(f"{server.url}{route}", files=fields, timeout=60)
            assert r.status_code == status, (name, r.text)
            error = r.json()["error"]
            assert words in error and error.count(". ") == 0, (name, error)
            assert decoded == [] and held.calls == 1, f"{name} was decoded or analysed"
        held.release.set()
        thread.join(60)
        assert first["r"].status_code == 200
    assert _uploads(tmp_path) == []


def test_the_reference_total_holds_while_decoding_when_headers_say_nothing(clf):
    """References recorded by a browser state no length: the total is enforced as they decode."""
    from ser_core.serve.rest import create_app

    webm = _headerless_webm(speech_like(6.0, seed=3))
    with _Server(create_app(clf, limits=Limits(max_reference_seconds=10.0))) as server:
        fields = _fields(2.0) + [("reference", (f"r{i}.webm", webm)) for i in range(2)]
        r = httpx.post(f"{server.url}/v1/predict", files=fields, timeout=60)
        assert r.status_code == 422
        assert r.json()["error"].startswith("The reference audio lasts more than the 10 s allowed;")


def test_the_recordings_total_holds_while_decoding_when_headers_say_nothing(clf):
    """Recordings a browser made state no length: POST /v1/voice holds their total as they decode."""
    from ser_core.serve.rest import create_app

    if not clf.adapted:
        pytest.skip("the bundle has no adapted model")
    webm = _headerless_webm(speech_like(6.0, seed=3))
    with _Server(create_app(clf, limits=Limits(max_seconds=10.0))) as server:
        fields = [("recording", (f"r{i}.webm", webm)) for i in range(2)]
        r = httpx.post(f"{server.url}/v1/voice", files=fields, timeout=60)
        assert r.status_code == 422
        assert r.json()["error"].startswith("The recordings last more than the 10 s allowed in all;")
        r = httpx.post(f"{server.url}/v1/voice", files=fields[:1], timeout=60)
        assert r.status_code == 200 and r.json()["session"]["recordings"] == 1


def test_a_light_request_whose_header_said_nothing_moves_to_the_heavy_lane(clf, tmp_path):
    """A 40 s WebM without a length in its header starts in the light lane; once its decoding passes
    the light budget it waits for the heavy lane (503 while that is held), never reaching the model
    from a light slot; on its own it gets the library's verdict."""
    from ser_core.serve.rest import create_app

    webm = _headerless_webm(speech_like(40.0, seed=4))
    (tmp_path / "long.webm").write_bytes(webm)
    held = _Watched(clf, hold=True)
    with _Server(create_app(held, limits=Limits(slots=2, max_wait_seconds=0.5))) as server:
        fields = _fields(40.0)
        thread = threading.Thread(
            target=lambda: httpx.post(f"{server.url}/v1/predict", files=fields, timeout=120), daemon=True
        )
        thread.start()
        assert held.entered.wait(60)  # a known heavy request holds the heavy lane
        held.hold = False
        r = httpx.post(f"{server.url}/v1/predict", files={"file": ("long.webm", webm)}, timeout=60)
        assert r.status_code == 503 and held.calls == 1
        held.release.set()
        thread.join(120)
        r = httpx.post(f"{server.url}/v1/predict", files={"file": ("long.webm", webm)}, timeout=60)
        assert r.status_code == 200
        assert r.json()["probabilities"] == pytest.approx(clf.predict(tmp_path / "long.webm").probabilities, abs=1e-6)


def _raw_request(port: int, route: str, fields: list) -> socket.socket:
    """Send a whole multipart request on a raw socket and return it, unread."""
    request = httpx.Request("POST", f"http://127.0.0.1:{port}{route}", files=fields)
    body = request.read()
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host")
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
    return sock


# requests whose references or recordings are being learned from: (route, fields of a 2 s recording, references)
LEARNING = {
    "/v1/predict": ("/v1/predict", "file", 1),
    "/v1/timeline": ("/v1/timeline", "file", 1),
    "/v1/segments": ("/v1/segments", "file", 1),
    "/v1/voice references": ("/v1/voice", "file", 1),  # the 'file' field is ignored: references only
    "/v1/voice recordings": ("/v1/voice", "recording", 0),
}


@pytest.mark.parametrize("learning", LEARNING)
def test_an_analysis_stops_when_its_client_leaves_during_references(clf, learning):
    from ser_core.serve.rest import create_app

    if not clf.adapted:
        pytest.skip("the bundle has no adapted model")
    route, name, references = LEARNING[learning]
    held = _Watched(clf, hold=True)
    with _Server(create_app(held)) as server:
        with _raw_request(server.port, route, _fields(2.0, references, reference_seconds=5.0, name=name)):
            assert held.entered.wait(30)  # in calibrate() or adapt(): the speaker's speech is being learned
        assert held.stopped.wait(30), "the analysis went on after the client left"


@pytest.mark.parametrize("learning", ["/v1/predict", "/v1/voice references", "/v1/voice recordings"])
def test_stopping_the_server_during_references_answers_a_json_503(clf, learning):
    """What SIGTERM does (Gate.stop_all) while references are processed: a JSON 503 with Retry-After."""
    from ser_core.serve.rest import create_app

    if not clf.adapted:
        pytest.skip("the bundle has no adapted model")
    route, name, references = LEARNING[learning]
    held = _Watched(clf, hold=True)
    app = create_app(held)
    with _Server(app) as server:
        out: dict = {}
        fields = _fields(2.0, references, reference_seconds=5.0, name=name)
        thread = threading.Thread(
            target=lambda: out.update(r=httpx.post(f"{server.url}{route}", files=fields, timeout=60)), daemon=True
        )
        thread.start()
        assert held.entered.wait(30)
        app.state.gate.stop_all()
        thread.join(60)
        assert held.stopped.is_set()
        r = out["r"]
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        assert "stopped" in r.json()["error"] and int(r.headers["retry-after"]) > 0


def test_calibration_and_decoding_stop_at_the_next_step(classifier, decoded, tmp_path):
    from ser_core.errors import Cancelled
    from ser_core.serve.limits import Budget

    if not classifier.adapted:
        pytest.skip("the bundle has no adapted model")
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        classifier.calibrate([speech_like(20.0)], 16_000, stop=stop)
    path = tmp_path / "r.wav"
    path.write_bytes(_wav(speech_like(30.0)))
    budget = Budget()
    budget.add_reference(path)
    for run in (lambda: budget.load(path), lambda: budget.load_references([path])):
        with pytest.raises(Cancelled):
            budget.start(stop)
            run()
    assert decoded == []


def test_utterances_feed_the_detector_one_block_at_a_time(clf, monkeypatch):
    """The 10-minute /v1/segments memory: the voice-activity model is never given more than one
    decoding block of the recording at once, whatever its length."""
    from ser_core import audio
    from ser_core.inference import utterances
    from ser_core.serve.rest import create_app

    sizes = []
    original = utterances.SileroDetector.__call__

    def watched(self, frames):
        sizes.append(frames.size)
        return original(self, frames)

    monkeypatch.setattr(utterances.SileroDetector, "__call__", watched)
    with _Server(create_app(clf)) as server:
        r = httpx.post(f"{server.url}/v1/segments", files=_fields(45.0), timeout=120)
    assert r.status_code == 200 and len(sizes) > 1
    assert max(sizes) <= audio.DECODE_BLOCK_SECONDS * audio.SAMPLE_RATE + utterances.SILERO_FRAME


def test_the_demo_calibration_step_decodes_at_most_a_minute(classifier, decoded, tmp_path):
    """A calibration reading of any length is decoded only up to its first minute, which is what
    calibrates the visitor's voice; a short one is used whole."""
    from ser_core import audio
    from ser_core.serve import gradio_app as app
    from ser_core.serve.limits import MAX_CALIBRATION_SECONDS

    if not classifier.adapted:
        pytest.skip("the bundle has no adapted model")
    path = tmp_path / "five-minutes.wav"
    path.write_bytes(_wav(np.tile(speech_like(6.0, seed=8), 50)))
    reading, longer = app.read_calibration(str(path))
    assert longer and reading.size == MAX_CALIBRATION_SECONDS * 16_000
    assert (
        sum(len(samples) for samples, _ in decoded)
        <= (MAX_CALIBRATION_SECONDS + 2 * audio.DECODE_BLOCK_SECONDS) * 16_000
    )
    visitor = app.VisitorVoice()
    status = app.on_calibrate(classifier, str(path), visitor)
    assert visitor.voice.reference_seconds <= MAX_CALIBRATION_SECONDS and 'data-adapted="true"' in status
    ok = tmp_path / "me.wav"
    ok.write_bytes(_wav(speech_like(6.0, seed=8)))
    assert app.read_calibration(str(ok))[1] is False
    visitor = app.VisitorVoice()
    app.on_calibrate(classifier, str(ok), visitor)
    np.testing.assert_allclose(visitor.voice.reference.total, classifier.calibrate([ok]).reference.total, rtol=1e-6)


def test_a_request_whose_client_left_while_it_waited_never_starts(clf):
    from ser_core.serve.rest import create_app

    held = _Watched(clf, hold=True)
    app = create_app(held, limits=Limits(slots=1))
    gate = app.state.gate
    with _Server(app) as server:
        thread, first = _post_in_thread(server.url, "/v1/predict")
        assert held.entered.wait(30)
        with _raw_request(server.port, "/v1/predict", _fields(2.0)):
            for _ in range(600):  # bounded: until it waits for the slot
                if gate.waiting:
                    break
                time.sleep(0.05)
            assert gate.waiting == 1
        held.release.set()
        thread.join(60)
        for _ in range(600):  # bounded: until the second has had the slot and given it back
            if not gate.waiting and not gate.running:
                break
            time.sleep(0.05)
        assert first["r"].status_code == 200 and held.calls == 1
