"""The live stream, GET /v1/stream: its protocol over a real WebSocket on loopback, every limit,
bad messages, disconnects, the same utterances as timeline --segments, the client and the CLI,
and the demo's live tab, which shares the utterance logic."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, free_port, speech_like
from test_server import _Server

from ser_core import audio
from ser_core.errors import AudioError, BusyError, ParameterError
from ser_core.inference.utterances import MIN_PAUSE_SECONDS, PAD_SECONDS
from ser_core.serve import stream
from ser_core.serve.limits import Limits

websockets = pytest.importorskip("websockets", reason="the stream needs the websockets package (requirements.txt)")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from ser_core.serve.client import StreamClient, StreamFailed, collect  # noqa: E402

SR = audio.SAMPLE_RATE
BOUNDARY = 0.05  # s: the stream's utterances are timeline --segments' within this
QUICK = Limits(stream_speed=1000.0)  # tests send faster than a real client may
WAIT = 30.0  # s: the longest any event is waited for


def phrases(*seconds: float, pause: float = 0.8, seed: int = 0) -> np.ndarray:
    """Synthetic speech-like phrases of the given lengths, each followed by ``pause`` s of near-silence."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, s in enumerate(seconds):
        parts += [speech_like(s, seed=seed + i), np.zeros(int(pause * SR), np.float32)]
    y = np.concatenate(parts)
    return (y + 0.0005 * rng.standard_normal(y.size)).astype(np.float32)


def pcm(y: np.ndarray) -> bytes:
    return np.clip(np.round(y * 32768), -32768, 32767).astype("<i2").tobytes()


@contextlib.contextmanager
def served(classifier, limits: Limits = QUICK):
    """The REST server with the stream, on a free loopback port; yields ``(ws URL, app)``."""
    from ser_core.serve.rest import create_app

    app = create_app(classifier, limits=limits)
    with _Server(app) as server:
        yield server.url.replace("http://", "ws://") + stream.STREAM_PATH, app


@pytest.fixture(scope="module")
def server(classifier):
    with served(classifier) as (url, app):
        yield url, app


def until_closed(ws) -> tuple[list[dict], int | None]:
    """Every event until the server closes the stream, and its close code."""
    events = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            events.append(json.loads(ws.recv(timeout=WAIT)))
    return events, ws.close_code


def utterances(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "utterance"]


def poll(condition, timeout: float = WAIT) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def same_utterances(streamed: list[dict], segments: list[dict], tolerance: float = 1e-5) -> None:
    """The stream's utterances are ``--segments``' rows: boundaries within BOUNDARY, same verdicts."""
    assert len(streamed) == len(segments) > 0
    for a, b in zip(streamed, segments, strict=True):
        assert abs(a["start"] - b["start"]) <= BOUNDARY and abs(a["end"] - b["end"]) <= BOUNDARY, (a, b)
        assert a["speech"] == b["speech"] and a.get("emotion") == b.get("emotion")
        if not a["speech"]:
            continue
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= tolerance
        assert (a["intensity"] is None) == (b["intensity"] is None)
        if a["intensity"]:
            assert a["intensity"]["level"] == b["intensity"]["level"]
            assert abs(a["intensity"]["strength"] - b["intensity"]["strength"]) <= tolerance


# ---------------------------------------------------------------- the session, without a network


def test_each_utterance_comes_with_the_chunk_that_ends_its_pause(classifier):
    """A verdict is sent as soon as the pause after an utterance reaches the minimum, not later."""
    y = phrases(1.2, 2.0, 0.9, pause=1.0)
    session = stream.StreamSession(classifier, QUICK, detector="energy")
    chunk = int(0.05 * SR)
    arrived = []  # (stream seconds when the event came, event)
    for i in range(0, y.size, chunk):
        for event in session.audio(pcm(y[i : i + chunk])):
            arrived.append(((i + chunk) / SR, event))
    found = [(t, e) for t, e in arrived if e["type"] == "utterance"]
    assert len(found) == 3 and all(e["speech"] for _, e in found)
    frame = session.listener.segmenter.frame / SR
    for t, e in found:  # end: the last speech frame and the padding; the pause goes on from the frame
        waited = t - e["end"]
        assert MIN_PAUSE_SECONDS - PAD_SECONDS - frame <= waited <= MIN_PAUSE_SECONDS - PAD_SECONDS + frame + chunk / SR
    levels = [e for _, e in arrived if e["type"] == "level"]
    assert [e["t"] for e in levels] == pytest.approx(np.arange(1, len(levels) + 1), abs=0.06)
    assert any(e["speech"] for e in levels) and not levels[-1]["speech"]  # the stream ends in a pause
    assert session.text('{"type": "end"}') == [{"type": "done", "utterances": 3}]


def test_samples_split_across_messages_at_any_byte_are_read_whole(classifier):
    y = phrases(1.0, 1.5, pause=0.6)
    data = pcm(y)
    whole = stream.StreamSession(classifier, QUICK, detector="energy")
    odd = stream.StreamSession(classifier, QUICK, detector="energy")
    a = [e for i in range(0, len(data), 3200) for e in whole.audio(data[i : i + 3200])]
    b = [e for i in range(0, len(data), 1001) for e in odd.audio(data[i : i + 1001])]  # odd sizes
    a += whole.text('{"type": "end"}')
    b += odd.text('{"type": "end"}')
    assert utterances(a) == utterances(b) and len(utterances(a)) == 2


def test_a_session_holds_at_most_one_utterance_of_audio(classifier):
    """Round after round of audio through one session: its memory does not grow (a round is
    12 s, 0.8 MB as float32), and stays well under what the audio would take."""
    y = phrases(2.4, 6.0, 1.2, pause=0.4)
    session = stream.StreamSession(classifier, QUICK, detector="energy")
    step = SR  # half a second a message
    messages = [pcm(y[i : i + step // 2]) for i in range(0, y.size, step // 2)]

    def send() -> int:
        return sum(len(utterances(session.audio(m))) for m in messages)

    send()  # the first round allocates what the model and features keep
    tracemalloc.start()
    held = []
    count = 0
    for _ in range(8):
        count += send()
        held.append(tracemalloc.get_traced_memory()[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 24 and session.listener.seconds > 100
    assert held[-1] - held[1] < 2**19 and peak < 6 * 2**20


# ---------------------------------------------------------------- protocol


def test_the_happy_path_on_a_synthetic_stream(server, classifier, tmp_path):
    url, _ = server
    y = phrases(1.2, 2.5, 1.0)
    path = tmp_path / "phrases.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    events = collect(url, path, detector="energy", fast=True)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ready" and kinds[-1] == "done" and "level" in kinds
    assert events[0]["rate"] == SR and events[0]["detector"] == "energy"
    assert events[0]["limits"]["max_message_bytes"] == QUICK.max_message_bytes
    found = utterances(events)
    assert events[-1]["utterances"] == len(found) == 3
    for u in found:
        assert set(u) == {
            "type", "start", "end", "speech", "emotion", "confidence", "probabilities", "intensity", "adapted",
        }  # fmt: skip
        assert u["adapted"] is None and u["emotion"] in classifier.labels
        assert u["confidence"] == max(u["probabilities"].values())
    levels = [e["t"] for e in events if e["type"] == "level"]
    assert levels == sorted(levels) and levels[-1] <= y.size / SR
    rows = classifier.utterances(path, detector="energy").to_dict()["utterances"]
    same_utterances(found, rows)


def test_a_stream_at_8_khz_is_resampled(server, classifier):
    url, _ = server
    y = phrases(1.2, 2.0, pause=0.8)
    at16 = utterances(collect(url, y, SR, detector="energy", fast=True))
    y8 = audio.resample(y, sr=SR, target_sr=8_000)
    at8 = utterances(collect(url, y8, 8_000, detector="energy", fast=True))
    assert len(at8) == len(at16) == 2
    for a, b in zip(at8, at16, strict=True):
        assert abs(a["start"] - b["start"]) <= BOUNDARY and abs(a["end"] - b["end"]) <= BOUNDARY


def test_real_speech_with_silero_is_what_timeline_segments_finds(server, classifier, ravdess_files, tmp_path, cli):
    """Real RAVDESS sentences joined by pauses, Silero finding them: the stream (through the CLI
    client) gives the utterances and verdicts of timeline --segments on the same file."""
    url, _ = server
    rng = np.random.default_rng(5)
    parts = []
    for f in ravdess_files:
        y, _ = sf.read(f, dtype="float32")
        parts += [y, np.zeros(int(rng.uniform(0.3, 1.2) * SR), np.float32)]
    path = tmp_path / "sentences.wav"
    sf.write(path, np.concatenate(parts), SR, subtype="PCM_16")
    streamed = cli("stream", "--fast", "--json", url.replace("ws://", "http://").removesuffix("/v1/stream"), path)
    assert streamed.returncode == 0, streamed.stderr
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    segmented = cli("timeline", "--segments", "--json", path)
    rows = json.loads(segmented.stdout)["utterances"]
    assert len(rows) == len(ravdess_files)
    same_utterances(utterances(events), rows)
    assert events[-1] == {"type": "done", "utterances": len(rows)}


def test_a_voice_sent_first_adapts_every_verdict(server, classifier, ravdess_files, tmp_path):
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    url, _ = server
    voice = classifier.calibrate(ravdess_files[:2])
    y = np.concatenate([sf.read(f, dtype="float32")[0] for f in ravdess_files[3:5]] + [np.zeros(SR, np.float32)])
    path = tmp_path / "two.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    found = utterances(collect(url, path, voice=voice, fast=True))
    rows = classifier.utterances(path, voice=voice).to_dict()["utterances"]
    assert {u["adapted"] for u in found} == {"reference"}
    same_utterances(found, rows)
    plain = utterances(collect(url, path, fast=True))
    assert [u["probabilities"] for u in plain] != [u["probabilities"] for u in found]


def test_end_judges_the_utterance_in_progress(server):
    url, _ = server
    y = speech_like(1.5)[: int(1.6 * SR)]  # speech up to the very end: no pause ends it
    with connect(url + "?detector=energy", compression=None) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["type"] == "ready"
        ws.send(pcm(y))
        ws.send('{"type": "end"}')
        events, code = until_closed(ws)
    assert code == 1000 and [e["type"] for e in events if e["type"] != "level"] == ["utterance", "done"]
    assert events[-1]["utterances"] == 1 and events[-2]["end"] == pytest.approx(y.size / SR, abs=0.001)


def test_the_openapi_document_describes_the_stream(server):
    url, _ = server
    base = url.replace("ws://", "http://").removesuffix(stream.STREAM_PATH)
    doc = httpx.get(f"{base}/openapi.json").json()["paths"][stream.STREAM_PATH]["get"]
    assert '{"type": "utterance"' in doc["description"] and '{"type": "end"}' in doc["description"]
    assert {p["name"] for p in doc["parameters"]} == {"rate", "detector"}
    plain = httpx.get(f"{base}{stream.STREAM_PATH}")
    assert plain.status_code == 426 and "WebSocket" in plain.json()["error"]


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    "query, needle",
    [("rate=100", "rate must be"), ("rate=96000", "rate must be"), ("rate=abc", "rate must be"),
     ("detector=nope", "Unknown voice-activity detector")],
)  # fmt: skip
def test_bad_parameters_are_refused_at_the_handshake(server, query, needle):
    url, app = server
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}?{query}")
    assert refused.value.response.status_code == 422
    assert needle in json.loads(refused.value.response.body)["error"]
    assert not app.state.streams.active


def test_the_client_says_why_the_server_refused(server):
    url, _ = server
    with pytest.raises(ParameterError, match="Unknown voice-activity detector 'nope'"):
        collect(url, np.zeros(SR), SR, detector="nope")


def test_a_full_server_refuses_the_handshake_and_a_departure_frees_its_place(classifier):
    with served(classifier, Limits(max_streams=1)) as (url, app):
        first = connect(url, compression=None)
        assert json.loads(first.recv(timeout=WAIT))["type"] == "ready"
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        response = refused.value.response
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert "already serving 1 streams" in json.loads(response.body)["error"]
        with pytest.raises(BusyError, match="already serving 1 streams"):
            collect(url, np.zeros(SR), SR)
        first.send(pcm(speech_like(1.0)))
        first.socket.shutdown(socket.SHUT_RDWR)  # the client vanishes mid-utterance, no close frame
        first.socket.close()
        assert poll(lambda: not app.state.streams.active)
        with contextlib.suppress(Exception):
            first.close()
        events = collect(url, phrases(1.0), SR, detector="energy", fast=True)
        assert events[-1]["type"] == "done"


def test_a_stream_over_the_longest_session_gets_its_verdicts_then_an_error(classifier):
    with served(classifier, Limits(max_stream_seconds=3.0, stream_speed=1000.0)) as (url, _):
        y = phrases(1.0, 1.5, 1.0, pause=0.6)  # 6.2 s
        with connect(url + "?detector=energy", compression=None) as ws:
            ws.recv(timeout=WAIT)
            with contextlib.suppress(ConnectionClosed):
                for i in range(0, y.size, SR // 2):
                    ws.send(pcm(y[i : i + SR // 2]))
            events, code = until_closed(ws)
    assert code == 1008 and events[-1]["type"] == "error" and "limit of 3 s" in events[-1]["message"]
    found = utterances(events)
    assert len(found) == 2 and found[-1]["end"] <= 3.0  # the one cut by the limit is judged too


def test_an_oversized_message_is_refused(classifier):
    with served(classifier, Limits(max_message_bytes=1000, stream_speed=1000.0)) as (url, _):
        with connect(url, compression=None) as ws:
            ws.recv(timeout=WAIT)
            ws.send(b"\0" * 1002)
            events, code = until_closed(ws)
    assert code == 1009 and events == [{"type": "error", "message": events[0]["message"]}]
    assert "1002 bytes is over the limit of 1000" in events[0]["message"]


def test_audio_much_faster_than_real_time_is_refused(classifier):
    with served(classifier, Limits(stream_speed=2.0, stream_head_start_seconds=1.0)) as (url, _):
        with connect(url, compression=None) as ws:
            ws.recv(timeout=WAIT)
            with contextlib.suppress(ConnectionClosed):
                for _ in range(20):
                    ws.send(pcm(np.zeros(SR // 2, np.float32)))
            events, code = until_closed(ws)
    assert code == 1008 and "faster than real time" in events[-1]["message"]


def test_the_fast_client_keeps_to_the_speed_the_server_allows(classifier):
    with served(classifier, Limits(stream_speed=8.0, stream_head_start_seconds=1.0)) as (url, _):
        events = collect(url, phrases(1.0, 1.2, pause=0.6), SR, detector="energy", fast=True)
    assert events[-1]["type"] == "done" and len(utterances(events)) == 2


def test_a_silent_client_is_closed_after_the_idle_limit(classifier):
    with served(classifier, Limits(stream_idle_seconds=0.3)) as (url, app):
        with connect(url, compression=None) as ws:
            ws.recv(timeout=WAIT)
            events, code = until_closed(ws)  # no message sent
        assert code == 1008 and "Nothing arrived for 0.3 s" in events[-1]["message"]
        assert poll(lambda: not app.state.streams.active)


# ---------------------------------------------------------------- bad messages


@pytest.mark.parametrize(
    "messages, code, needle",
    [
        (["hello"], 1003, 'must be JSON with "type"'),
        (['{"type": "pause"}'], 1003, 'must be JSON with "type"'),
        (["[1, 2]"], 1003, 'must be JSON with "type"'),
        (['{"type": "voice", "voice": {"format": 99}}'], 1007, "not a saved voice"),
        ([b"\0\0" * 100, '{"type": "voice", "voice": {}}'], 1008, "voice must be the first message"),
    ],
)
def test_bad_messages_get_one_sentence_and_a_close_code(server, messages, code, needle):
    url, app = server
    with connect(url, compression=None) as ws:
        ws.recv(timeout=WAIT)
        for message in messages:
            ws.send(message)
        events, closed = until_closed(ws)
    assert closed == code and events[-1]["type"] == "error" and needle in events[-1]["message"]
    assert poll(lambda: not app.state.streams.active)


def test_a_voice_of_another_model_is_refused(server, classifier):
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    from ser_core import Voice

    url, _ = server
    voice = classifier.calibrate([speech_like(4.0, seed=5)], SR)
    other = Voice("0123456789abcdef", voice.reference, voice.reference_seconds)
    events = collect(url, phrases(1.0), SR, voice=other, fast=True)
    assert events[-1]["type"] == "error" and "another model" in events[-1]["message"]


# ---------------------------------------------------------------- saved voices (issue 20)


def _learned(url: str, **fields) -> dict:
    """The voice POST /v1/voice learns on the stream's server from ``fields`` (name -> list of signals)."""
    base = url.replace("ws://", "http://").removesuffix(stream.STREAM_PATH)
    files = [(name, (f"{name}{i}.wav", _wav(y))) for name, ys in fields.items() for i, y in enumerate(ys)]
    r = httpx.post(f"{base}/v1/voice", files=files, timeout=WAIT)
    assert r.status_code == 200, r.text
    return r.json()


def _wav(y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_voice_learned_by_the_rest_api_adapts_the_stream(classifier, tmp_path):
    """A voice from POST /v1/voice (a reference and recordings: larger than an audio message may
    be) sent first: every utterance is the library's with that voice, and says 'reference'."""
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    from ser_core import Voice

    limits = Limits(stream_speed=1000.0, max_message_bytes=32 * 2**10)
    with served(classifier, limits) as (url, _):
        saved = _learned(
            url, reference=[speech_like(5.0, f0=200.0, seed=21)], recording=[speech_like(2.5, seed=s) for s in (22, 23)]
        )
        size = len(json.dumps({"type": "voice", "voice": saved}).encode())
        assert size > limits.max_message_bytes  # a voice is not held to the audio messages' limit
        voice = Voice.from_dict(saved)
        y = phrases(1.2, 2.5, seed=3)
        path = tmp_path / "phrases.wav"
        sf.write(path, y, SR, subtype="PCM_16")
        found = utterances(collect(url, path, detector="energy", voice=voice, fast=True))
        plain = utterances(collect(url, path, detector="energy", fast=True))
    assert {u["adapted"] for u in found} == {"reference"}
    same_utterances(found, classifier.utterances(path, detector="energy", voice=voice).to_dict()["utterances"])
    assert [u["probabilities"] for u in plain] != [u["probabilities"] for u in found]


def test_a_voice_that_knows_too_little_is_taken_and_gives_plain_verdicts(server, classifier):
    """Two recordings are too little to adapt to: the stream takes the voice, and every verdict is
    the unadapted one, with 'adapted' null."""
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    from ser_core import Voice

    url, _ = server
    voice = Voice.from_dict(_learned(url, recording=[speech_like(2.5, seed=s) for s in (31, 32)]))
    assert voice.source is None
    y = phrases(1.2, 2.0, seed=4)
    found = utterances(collect(url, y, SR, detector="energy", voice=voice, fast=True))
    plain = utterances(collect(url, y, SR, detector="energy", fast=True))
    assert found and {u["adapted"] for u in found} == {None}
    same_utterances(found, plain, tolerance=0.0)


def test_a_damaged_or_oversized_voice_gets_a_sentence_and_a_close_code(classifier):
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    voice = classifier.calibrate([speech_like(4.0, seed=5)], SR).to_dict()
    short = {**voice, "reference": {**voice["reference"], "sum": voice["reference"]["sum"][:-1]}}
    short["reference"]["squares"] = short["reference"]["squares"][:-1]
    limits = Limits(stream_speed=1000.0, max_message_bytes=32 * 2**10, max_voice_bytes=64 * 2**10)
    cases = [
        (json.dumps({"type": "voice", "voice": short}), 1007, "does not fit this model"),
        ('{"type": "voice", "voice": ' + "[" * 20_000 + "]" * 20_000 + "}", 1003, 'must be JSON with "type"'),
        (json.dumps({"type": "voice", "voice": voice, "pad": " " * 70_000}), 1009, "over the limit of 65536"),
    ]
    with served(classifier, limits) as (url, app):
        for message, code, needle in cases:
            with connect(url, compression=None) as ws:
                ws.recv(timeout=WAIT)
                ws.send(message)
                events, closed = until_closed(ws)
            assert closed == code and events[-1]["type"] == "error" and needle in events[-1]["message"], events
        assert poll(lambda: not app.state.streams.active)


def test_a_client_that_leaves_mid_stream_frees_everything(server):
    url, app = server
    for _ in range(3):
        ws = connect(url + "?detector=energy", compression=None)
        ws.recv(timeout=WAIT)
        ws.send(pcm(speech_like(2.0)))
        ws.close()  # no "end": nothing is judged, nothing is kept
    assert poll(lambda: not app.state.streams.active)


# ---------------------------------------------------------------- client and command line


def test_the_client_refuses_what_it_cannot_send(tmp_path):
    with pytest.raises(ParameterError, match="not a server address"):
        StreamClient("ftp://host")
    with pytest.raises(ParameterError, match="8000 to 48000"):
        collect("http://127.0.0.1:9", np.zeros(SR), 96_000)
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(AudioError):
        collect("http://127.0.0.1:9", tmp_path / "notes.txt")
    with pytest.raises(StreamFailed, match="Could not open a stream"):
        collect(f"http://127.0.0.1:{free_port()}", np.zeros(SR), SR)


def test_cli_stream_prints_each_verdict_and_done(server, cli, tmp_path):
    url, _ = server
    path = tmp_path / "phrases.wav"
    sf.write(path, phrases(1.2, 2.0), SR, subtype="PCM_16")
    base = url.replace("ws://", "http://").removesuffix(stream.STREAM_PATH)
    out = cli("stream", base, path, "--detector", "energy", "--fast")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "streaming at 16000 Hz, utterances found by energy"
    assert lines[-1] == "done: 2 utterances" and len(lines) == 4
    assert all(" s  " in line and "%" in line for line in lines[1:3])
    as_json = cli("stream", url, path, "--detector", "energy", "--fast", "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[0]["type"] == "ready" and events[-1] == {"type": "done", "utterances": 2}


def test_cli_stream_with_a_reference_voice(server, cli, classifier, ravdess_files, tmp_path):
    if not classifier.adapted:
        pytest.skip("the model has no adapted variant")
    url, _ = server
    path = tmp_path / "two.wav"
    sf.write(path, np.concatenate([sf.read(f, dtype="float32")[0] for f in ravdess_files[3:5]]), SR, subtype="PCM_16")
    out = cli("stream", url, path, "--fast", "--json", "--reference", ravdess_files[0], "--reference", ravdess_files[1])
    assert out.returncode == 0, out.stderr
    found = utterances([json.loads(line) for line in out.stdout.splitlines()])
    voice = classifier.calibrate(ravdess_files[:2])
    same_utterances(found, classifier.utterances(path, voice=voice).to_dict()["utterances"])
    assert {u["adapted"] for u in found} == {"reference"}
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    usage = cli("stream", url, path, "--reference", silent)
    assert usage.returncode == 2 and usage.stderr.startswith("error: --reference:")


def test_cli_stream_failures_are_one_line(cli, tmp_path, server):
    url, _ = server
    path = tmp_path / "phrases.wav"
    sf.write(path, phrases(1.0), SR, subtype="PCM_16")
    nobody = cli("stream", f"http://127.0.0.1:{free_port()}", path)
    assert nobody.returncode == 1 and nobody.stderr.startswith("error: Could not open a stream")
    assert len(nobody.stderr.strip().splitlines()) == 1
    (tmp_path / "notes.txt").write_text("not audio")
    bad = cli("stream", url, tmp_path / "notes.txt")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    usage = cli("stream", "nowhere://x", path)
    assert usage.returncode == 2 and "not a server address" in usage.stderr


def test_stopping_the_server_sends_each_stream_what_it_holds(tmp_path, bundle_dir):
    """SIGTERM with a stream mid-utterance: the client gets that utterance's verdict, then an
    error and code 1012, and the server exits."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser_core", "serve", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert poll(lambda: _listening(port) or proc.poll() is not None, 60) and proc.poll() is None
        with connect(f"ws://127.0.0.1:{port}/v1/stream?detector=energy", compression=None) as ws:
            ws.recv(timeout=WAIT)
            ws.send(pcm(np.concatenate([np.zeros(SR // 2, np.float32), speech_like(1.5)[: int(1.6 * SR)]])))
            level = json.loads(ws.recv(timeout=WAIT))  # the audio is in: the utterance is in progress
            assert level["type"] == "level" and level["speech"]
            proc.send_signal(signal.SIGTERM)
            events, code = until_closed(ws)
        assert code == 1012 and events[-1]["type"] == "error" and "stopping" in events[-1]["message"]
        assert len(utterances(events)) == 1
        code = proc.wait(30)
        log = proc.stderr.read()
        assert code in (0, -signal.SIGTERM) and "Finished server process" in log, log  # uvicorn re-raises the signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- the demo's live tab


def test_the_live_tab_judges_each_utterance_as_the_stream_does(classifier, ravdess_files):
    """The demo's live tab feeds the same Listener as the stream: its utterances, judged as each
    ends, are the stream's; stopping the recording judges the last one."""
    from ser_core.serve import gradio_app as app

    sr = 48_000
    sentences = [sf.read(f, dtype="float32")[0] for f in ravdess_files[:3]]
    sentences[-1] = sentences[-1][: int(0.6 * sentences[-1].size)]  # speech to the end: only stopping ends it
    y16 = np.concatenate(sentences)
    y = (np.clip(audio.resample(y16, sr=SR, target_sr=sr), -1, 1) * 32767).astype(np.int16)
    chunks = [(sr, y[i : i + sr // 2]) for i in range(0, y.size, sr // 2)]  # what the browser sends
    session, seen = None, []
    for chunk in chunks:
        session, html, *_ = app.on_live_chunk(classifier, chunk, session)
        seen.append(len(session.utterances))
    assert seen[-1] == 2 and seen == sorted(seen) and seen[0] == 0
    session, html, _ = app.on_live_stop(classifier, session)
    assert len(session.utterances) == 3 and 'data-count="3"' in html
    listener = stream.Listener(classifier)  # the stream's own, fed the same sound
    direct = [w for chunk in chunks for w in listener.feed(app.load_signal(chunk))] + listener.finish()
    assert direct == session.utterances
    for w in session.utterances:
        assert f'data-emotion="{w.prediction.emotion}"' in html
    assert app.on_live_stop(classifier, session)[0].utterances == session.utterances  # a second stop adds nothing
