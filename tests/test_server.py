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


# ---------------------------------------------------------------- saved voices (issue 20)


def _learn(base: str, *, references=(), recordings=(), voice: str | None = None) -> httpx.Response:
    """POST /v1/voice with WAV ``references`` and ``recordings`` (``{name: signal}``) and a saved voice."""
    files = [("reference", (n, _wav(y))) for n, y in dict(references).items()]
    files += [("recording", (n, _wav(y))) for n, y in dict(recordings).items()]
    files += [] if voice is None else [("voice", (None, voice))]  # a text field
    return httpx.post(f"{base}/v1/voice", files=files)


def _session(count: int, seconds: float = 2.5, seed: int = 100) -> dict[str, np.ndarray]:
    """``count`` recordings of one synthetic speaker."""
    return {f"s{i}.wav": speech_like(seconds, f0=150.0 + 5 * (i % 4), seed=seed + i) for i in range(count)}


def _same_voice(a, b) -> None:
    """Two voices hold the same sums (to the last bits a JSON round trip keeps)."""
    assert (a.reference is None) == (b.reference is None) and (a.session is None) == (b.session is None)
    for x, y in ((a.reference, b.reference), (a.session, b.session)):
        if x is not None:
            assert x.count == y.count
            np.testing.assert_allclose(x.total, y.total, rtol=1e-12)
            np.testing.assert_allclose(x.squares, y.squares, rtol=1e-12)
    if a.session is not None:
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-12)
        assert a.recordings == b.recordings
    assert a.reference_seconds == pytest.approx(b.reference_seconds, abs=1e-3)
    assert a.session_seconds == pytest.approx(b.session_seconds, abs=1e-3)


@pytest.fixture(scope="module")
def adapted_clf(clf):
    if clf.adapted is None:
        pytest.skip("the bundle has no adapted model")
    return clf


def _files(tmp_path, signals: dict[str, np.ndarray]) -> list[Path]:
    paths = []
    for name, y in signals.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(_wav(y))
    return paths


def test_a_voice_learned_by_the_api_gives_the_library_verdicts_on_every_route(base, adapted_clf, tmp_path):
    """POST /v1/voice with a reference and recordings answers the voice the library learns from the
    same files; sent back in 'voice', it gives the library's verdicts with that voice, and says so."""
    from ser_core import Voice

    clf = adapted_clf
    me, session = {"me.wav": speech_like(6.0, f0=210.0, seed=7)}, _session(4)
    r = _learn(base, references=me, recordings=session)
    assert r.status_code == 200, r.text
    answer = r.json()
    library = clf.adapt(_files(tmp_path, session), voice=clf.calibrate(_files(tmp_path, me)))
    _same_voice(Voice.from_dict(answer), library)
    assert answer["source"] == library.source == "reference"
    assert answer["description"] == library.describe() and "4 recordings" in answer["description"]

    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(np.concatenate([speech_like(3.0, seed=1), np.zeros(16_000, np.float32), speech_like(2.0)])))
    expected = {
        "/v1/predict": clf.predict(clip, voice=library).to_dict(),
        "/v1/timeline": clf.timeline(clip, voice=library).to_dict(),
        "/v1/segments": clf.utterances(clip, voice=library).to_dict(),
    }
    plain = clf.predict(clip).probabilities
    for route, want in expected.items():
        got = httpx.post(f"{base}{route}", files={"file": ("clip.wav", clip.read_bytes())}, data={"voice": r.text})
        assert got.status_code == 200, (route, got.text)
        got = got.json()
        assert got["adapted"] == "reference", route
        rows = {"/v1/predict": None, "/v1/timeline": "windows", "/v1/segments": "utterances"}[route]
        pairs = [(got, want)] if rows is None else list(zip(got[rows], want[rows], strict=True))
        for a, b in pairs:
            assert a.get("emotion") == b.get("emotion"), route
            if b.get("probabilities"):
                assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6), route
    assert expected["/v1/predict"]["probabilities"] != pytest.approx(plain, abs=1e-3)  # the voice made a difference


def test_a_voice_learned_in_steps_is_the_voice_learned_at_once(base, adapted_clf):
    """The server keeps nothing: a client that sends back each answer with more recordings ends
    with the voice of all of them at once, and a voice sent alone is answered as it was."""
    from ser_core import Voice

    session = _session(8)
    names = list(session)
    at_once = _learn(base, recordings=session).json()
    first = _learn(base, recordings={n: session[n] for n in names[:3]})
    second = _learn(base, recordings={n: session[n] for n in names[3:]}, voice=first.text)
    assert first.status_code == second.status_code == 200
    _same_voice(Voice.from_dict(second.json()), Voice.from_dict(at_once))
    assert second.json()["session"]["recordings"] == 8
    echo = _learn(base, voice=second.text)
    assert echo.status_code == 200 and echo.json() == second.json()


def test_a_session_voice_adapts_once_it_knows_enough(adapted_clf):
    """Recordings alone: a voice that knows too little says how much more it needs, and verdicts
    with it are the plain ones (adapted null); with enough recordings they are 'same-speaker'."""
    from ser_core.inference.voice import MIN_SESSION_CLIPS
    from ser_core.serve.rest import create_app

    clf = adapted_clf
    with _Server(create_app(clf)) as server:  # the default upload limit: 16 recordings are 1.4 MB
        _session_voice_adapts(clf, server.url, MIN_SESSION_CLIPS)


def _session_voice_adapts(clf, base: str, enough_recordings: int) -> None:
    clip = _wav(speech_like(3.0, seed=1))
    plain = httpx.post(f"{base}/v1/predict", files={"file": ("c.wav", clip)}).json()
    little = _learn(base, recordings=_session(2))
    assert little.status_code == 200 and little.json()["source"] is None
    assert little.json()["description"].startswith("Learning your voice")
    got = httpx.post(f"{base}/v1/predict", files={"file": ("c.wav", clip)}, data={"voice": little.text}).json()
    assert got["adapted"] is None and got["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-9)

    enough = _learn(base, recordings=_session(enough_recordings))  # 16 recordings of 2.5 s: 16 clips, 40 s
    assert enough.status_code == 200 and enough.json()["source"] == "same-speaker", enough.json()["description"]
    got = httpx.post(f"{base}/v1/predict", files={"file": ("c.wav", clip)}, data={"voice": enough.text}).json()
    from ser_core import Voice

    expected = clf.predict(*sf.read(io.BytesIO(clip), dtype="float32"), voice=Voice.from_dict(enough.json()))
    assert got["adapted"] == "same-speaker"
    assert got["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


def test_references_sent_with_a_voice_add_to_it_for_that_request(base, adapted_clf, tmp_path):
    from ser_core import Voice

    clf = adapted_clf
    saved = _learn(base, recordings=_session(3))
    me = tmp_path / "me.wav"
    me.write_bytes(_wav(speech_like(5.0, f0=190.0, seed=9)))
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(speech_like(3.0, seed=4)))
    expected = clf.predict(clip, voice=clf.calibrate([me], voice=Voice.from_dict(saved.json())))
    files = [("file", ("clip.wav", clip.read_bytes())), ("reference", ("me.wav", me.read_bytes()))]
    r = httpx.post(f"{base}/v1/predict", files=files, data={"voice": saved.text})
    assert r.status_code == 200 and r.json()["adapted"] == "reference"
    assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


def _voice_json(clf, session: bool = True, **change) -> str:
    """A real voice's JSON (a reference, and a session unless not ``session``), with fields of it replaced."""
    voice = clf.calibrate([speech_like(4.0, seed=31)], 16_000)
    if session:
        voice = clf.adapt([speech_like(2.5, seed=30)], 16_000, voice=voice)
    data = voice.to_dict()
    for key, value in change.items():
        part, _, field = key.partition("__")
        if field:
            data[part][field] = value(data[part][field]) if callable(value) else value
        else:
            data[part] = value
    return json.dumps(data)


BAD_VOICES = {
    "not JSON": (lambda clf: "{voice", "not valid JSON"),
    "nested beyond the parser": (lambda clf: "[" * 100_000, "not valid JSON"),
    "not UTF-8": (lambda clf: b"\xff\xfe{}", "not valid JSON"),
    "another version": (lambda clf: '{"format": 99}', "not a saved voice of this version"),
    "a field missing": (lambda clf: _voice_json(clf, reference__sum=None).replace('"sum": null, ', ""), "no 'sum'"),
    "a field of the wrong kind": (lambda clf: _voice_json(clf, session__count="many"), "wrong kind"),
    "a count beyond any number": (lambda clf: _voice_json(clf, session__count=float("inf")), "wrong kind"),
    "sums that are not finite": (
        lambda clf: _voice_json(clf, reference__sum=lambda s: [float("nan")] + s[1:]),
        "finite",
    ),
    "verdicts that are not finite": (
        lambda clf: _voice_json(clf, session__probabilities=lambda p: [float("nan")] + p[1:]),
        "finite",
    ),
    "sums of the wrong length": (
        lambda clf: _voice_json(clf, False, reference__sum=lambda s: s[:-1], reference__squares=lambda s: s[:-1]),
        "does not fit",
    ),
    "sums and squares of different lengths": (
        lambda clf: _voice_json(clf, False, reference__sum=lambda s: s[:-1]),
        "does not fit",
    ),
    "verdicts of the wrong length": (lambda clf: _voice_json(clf, session__probabilities=[1.0, 2.0]), "does not fit"),
    "sums no speech gives": (
        lambda clf: _voice_json(clf, reference__sum=lambda s: [1e300] * len(s)),
        "no speech gives",
    ),
    "another model's": (lambda clf: _voice_json(clf, features="0123456789abcdef"), "another model's features"),
}


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/timeline", "/v1/segments", "/v1/voice"])
@pytest.mark.parametrize("bad", BAD_VOICES)
def test_a_damaged_or_foreign_voice_is_422_with_one_sentence(base, adapted_clf, route, bad):
    make, needle = BAD_VOICES[bad]
    text = make(adapted_clf)
    field = "file" if route != "/v1/voice" else "recording"
    before = _uploads()
    r = httpx.post(f"{base}{route}", files={field: ("c.wav", _wav(speech_like(2.0)))}, data={"voice": text})
    assert r.status_code == 422, (bad, r.text)
    error = r.json()["error"]
    assert needle in error and error.count(". ") == 0 and error.endswith("."), (bad, error)
    assert _uploads() <= before


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/voice"])
@pytest.mark.parametrize(
    ("form", "size", "needle"),
    [
        ("text", 256 * 1024 + 1, "The voice sent (256 kB) is larger than the 256 kB allowed;"),
        ("text", 2 * 2**20, "The voice sent is larger than the 256 kB allowed;"),  # over the form parser's own limit
        ("file", 600 * 1024, "The voice sent is larger than the 256 kB allowed;"),
    ],
)
def test_an_oversized_voice_is_413_with_one_sentence(route, form, size, needle, adapted_clf):
    from ser_core.serve.rest import create_app

    field = "file" if route != "/v1/voice" else "recording"
    voice = b" " * size
    files = {field: ("c.wav", _wav(speech_like(2.0)))}
    with _Server(create_app(adapted_clf)) as server:
        if form == "text":
            r = httpx.post(f"{server.url}{route}", files=files, data={"voice": voice.decode()})
        else:
            r = httpx.post(f"{server.url}{route}", files={**files, "voice": ("v.json", voice)})
    assert r.status_code == 413, r.text
    assert r.json()["error"].startswith(needle)


def test_an_empty_voice_field_is_no_voice(base):
    clip = _wav(speech_like(3.0, seed=1))
    plain = httpx.post(f"{base}/v1/predict", files={"file": ("c.wav", clip)}).json()
    r = httpx.post(f"{base}/v1/predict", files={"file": ("c.wav", clip)}, data={"voice": ""})
    assert r.status_code == 200 and r.json() == plain


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({}, 422, "Send recordings of the speaker in 'reference'"),
        ({"recordings": {"quiet.wav": np.zeros(32_000, np.float32)}}, 422, "The recordings hold no usable speech"),
        ({"references": {"quiet.wav": np.zeros(32_000, np.float32)}}, 422, "reference recordings hold no usable"),
    ],
)
def test_learning_from_nothing_is_422_with_a_sentence(base, adapted_clf, kwargs, status, needle):
    r = _learn(base, **kwargs) if kwargs else httpx.post(f"{base}/v1/voice", files={"other": ("x.txt", b"x")})
    assert r.status_code == status and needle in r.json()["error"], r.text


def test_learning_a_voice_needs_multipart_and_says_which_fields(base):
    r = httpx.post(f"{base}/v1/voice", json={"reference": "me.wav"})
    assert r.status_code == 415 and "'reference' or 'recording'" in r.json()["error"]


def test_a_model_without_an_adapted_variant_says_so(clf):
    import copy

    from ser_core.serve.rest import create_app

    plain = copy.copy(clf)
    plain.adapted = None
    with _Server(create_app(plain)) as server:
        r = httpx.post(f"{server.url}/v1/voice", files={"recording": ("a.wav", _wav(speech_like(2.0)))})
        assert r.status_code == 422 and "no adapted variant" in r.json()["error"]
        r = httpx.post(
            f"{server.url}/v1/predict",
            files={"file": ("a.wav", _wav(speech_like(2.0)))},
            data={"voice": json.dumps(clf.voice().to_dict())},
        )
        assert r.status_code == 422 and "no adapted variant" in r.json()["error"]


def test_the_openapi_document_describes_voices(base):
    doc = httpx.get(f"{base}/openapi.json").json()
    post = doc["paths"]["/v1/voice"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/VoiceOut")
    assert {"413", "415", "422", "503"} <= set(post["responses"])
    voice_out = doc["components"]["schemas"]["VoiceOut"]["properties"]
    assert {"format", "features", "source", "reference", "session", "description"} <= set(voice_out)
    for route in ("/v1/predict", "/v1/timeline", "/v1/segments", "/v1/voice"):
        body = doc["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        fields = doc["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
        assert "voice" in fields and "256 kB" in fields["voice"]["description"], route
