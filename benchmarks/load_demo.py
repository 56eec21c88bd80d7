"""Load test of the launched demo (issue 6): many visitors at once, each answer checked.

    .venv/bin/python benchmarks/load_demo.py [--clients 20] [--requests 5] [--timeout 120]
                                             [--artifacts DIR] [--in-process]

The demo is started as ``python demo.py`` on 127.0.0.1 and a free port (``--in-process``:
in a thread of this process instead), never on another interface. ``--clients`` threads,
each with its own :class:`gradio_client.Client`, send ``--requests`` files each to the
``/predict`` endpoint, all at once. The files are distinct (a few real RAVDESS files read in
place, synthetic speech of several lengths and rates written to a temporary folder) and
the answer for each is computed in this process before the load starts, so every answer
is checked against the one for *its* file: a mix-up between visitors shows up as a wrong
answer. Meanwhile a new visitor opens the page and asks once, and one visitor holds a
live microphone stream open (driven over HTTP the way the browser does it, since
gradio_client cannot stream an input). Everything stops by itself at ``--timeout``.
Prints a table: answered, errors, wrong answers, throughput, p50/p95/max latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench import speech_like, write_wav  # noqa: E402

from ser_core import EmotionClassifier  # noqa: E402
from ser_core.serve import gradio_app as app  # noqa: E402

HOST = "127.0.0.1"  # loopback only
RAVDESS = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
RAVDESS_FILES = (  # actor/file: several emotions, actors and lengths (3.3 to 4.3 s)
    "Actor_01/03-01-01-01-01-01-01.flac",
    "Actor_01/03-01-03-01-01-01-01.flac",
    "Actor_01/03-01-04-02-01-01-01.flac",
    "Actor_01/03-01-05-01-02-01-01.flac",
    "Actor_01/03-01-07-02-01-01-01.flac",
    "Actor_02/03-01-08-02-01-01-02.flac",
)
SYNTHETIC = (  # seconds, Hz, noise level: noise and length move the model's answer around
    (1.5, 44_100, 0.0),
    (1.5, 44_100, 0.03),
    (2.0, 8_000, 0.0),
    (2.0, 8_000, 0.03),
    (2.5, 22_050, 0.3),
    (3.0, 44_100, 0.1),
    (3.2, 16_000, 0.3),
    (5.0, 48_000, 0.3),
    (6.0, 22_050, 0.1),
    (8.0, 44_100, 0.0),
)
MIN_DISTINCT = 6  # fewer distinguishable inputs than this and a mix-up could hide
TOLERANCE = 1e-6  # probabilities must match the in-process answer this closely
LIVE_CHUNK_RATE = 48_000  # a browser microphone's rate
LIVE_SECONDS = 20.0  # length of the live signal, sent again from the start if the load lasts longer


# ---------------------------------------------------------------- inputs and their answers


def make_inputs(folder: Path, *, real: bool = True) -> list[Path]:
    """The distinct files the visitors send: RAVDESS files read in place (when present) and
    synthetic speech written into ``folder`` (different pitch, length and sample rate)."""
    files = [RAVDESS / name for name in RAVDESS_FILES if real and (RAVDESS / name).is_file()]
    for seed, (seconds, sr, noise) in enumerate(SYNTHETIC):
        path = folder / f"synthetic-{seed}-{seconds:g}s-{sr}Hz-noise{noise:g}.wav"
        y = speech_like(seconds, sr, seed=seed)
        y = y + noise * np.random.default_rng(seed).standard_normal(y.size).astype(np.float32)
        write_wav(path, np.clip(y, -1, 1), sr)
        files.append(path)
    return files


def expected_answers(clf: EmotionClassifier, files: Sequence[Path]) -> dict[str, dict]:
    """The ``/predict`` answer of each file, computed in this process by the endpoint's own
    function (:func:`ser_core.serve.gradio_app.api_predict`), for the files whose answers can be told apart
    (a file whose probabilities all lie within 100x :data:`TOLERANCE` of an earlier file's is
    left out, since a mix-up between the two would go unnoticed)."""
    answers: dict[str, dict] = {}
    kept: list[np.ndarray] = []
    for f in files:
        answer = app.api_predict(clf, str(f))
        vector = np.array(list(answer["probabilities"].values()))
        if all(np.max(np.abs(vector - other)) > 100 * TOLERANCE for other in kept):
            answers[str(f)] = answer
            kept.append(vector)
    if len(answers) < MIN_DISTINCT:
        raise ValueError(f"only {len(answers)} of {len(files)} inputs get distinct answers; add more varied inputs")
    return answers


def library_disagreements(clf: EmotionClassifier, expected: dict[str, dict]) -> list[tuple[str, str, str, float]]:
    """Files where :meth:`EmotionClassifier.predict` and the demo's ``/predict`` disagree:
    ``(file, library emotion, demo emotion, largest probability difference)``."""
    out = []
    for path, answer in expected.items():
        lib = clf.predict(path).to_dict()
        diff = max(abs(lib["probabilities"][k] - answer["probabilities"][k]) for k in answer["probabilities"])
        if diff > TOLERANCE:
            out.append((Path(path).name, lib["emotion"], answer["emotion"], diff))
    return out


def matches(answer: object, expected: dict, *, tol: float = TOLERANCE) -> bool:
    """``answer`` is ``expected``: same emotion, same labels in the same order, every
    probability and the confidence within ``tol``."""
    if not isinstance(answer, dict) or set(answer) != set(expected) or answer["emotion"] != expected["emotion"]:
        return False
    got, want = answer["probabilities"], expected["probabilities"]
    if list(got) != list(want) or abs(answer["confidence"] - expected["confidence"]) > tol:
        return False
    return all(abs(got[k] - want[k]) <= tol for k in want)


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_process(clf: EmotionClassifier) -> Iterator[str]:
    """The demo in a background thread of this process; yields its URL."""
    demo = app.build_app(clf)
    demo.launch(server_name=HOST, server_port=free_port(), prevent_thread_lock=True, quiet=True, **app.launch_options())
    try:
        yield demo.local_url
    finally:
        demo.close()


@contextlib.contextmanager
def serve_subprocess(artifacts: str | None, log: Path, *, start_timeout: float = 60.0) -> Iterator[str]:
    """``python demo.py --host 127.0.0.1 --port N`` in a child process, its output going to
    ``log`` (a file, so a full pipe can never stall the server); yields its URL once the page
    answers, and stops the child on exit."""
    import httpx

    port = free_port()
    cmd = [sys.executable, str(REPO / "demo.py"), "--host", HOST, "--port", str(port)]
    if artifacts:
        cmd += ["--artifacts", artifacts]
    url = f"http://{HOST}:{port}/"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"demo.py exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo.py did not answer within {start_timeout:g} s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- visitors


@dataclass
class Answer:
    """One request: which client sent which file, how long it took, what came back."""

    client: int
    file: str
    latency: float | None = None  # seconds from submit to answer; None when unanswered
    correct: bool = False
    error: str | None = None
    finished: float | None = None  # time.monotonic() of the answer


def ask(client, path: str, expected: dict, *, deadline: float, who: int = -1) -> Answer:
    """One ``/predict`` call through ``client``, timed and checked against ``expected``."""
    from gradio_client import handle_file

    out = Answer(who, path)
    start = time.monotonic()
    try:
        result = client.submit(handle_file(path), api_name="/predict").result(timeout=max(0.1, deadline - start))
    except Exception as e:  # timeouts and server errors alike are counted, not raised
        out.error = f"{type(e).__name__}: {e}"[:300]
        return out
    out.finished = time.monotonic()
    out.latency = out.finished - start
    out.correct = matches(result, expected)
    return out


def connect(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


@dataclass
class Visit:
    """A new visitor arriving during the load: the page, then a client and one request."""

    arrived: float = 0.0  # time.monotonic() when the visitor came
    page_seconds: float | None = None
    page_ok: bool = False
    connect_seconds: float | None = None
    answer: Answer | None = None
    error: str | None = None


def new_visitor(url: str, path: str, expected: dict, *, deadline: float) -> Visit:
    """Fetch the page (plain HTTP GET), then connect a fresh client and ask once."""
    import httpx

    visit = Visit(arrived=time.monotonic())
    try:
        start = time.monotonic()
        page = httpx.get(url, timeout=max(0.1, deadline - start))
        visit.page_seconds = time.monotonic() - start
        visit.page_ok = page.status_code == 200 and "Speech emotion recognition" in page.text
        start = time.monotonic()
        client = connect(url)
        visit.connect_seconds = time.monotonic() - start
        visit.answer = ask(client, path, expected, deadline=deadline, who=-1)
    except Exception as e:
        visit.error = f"{type(e).__name__}: {e}"[:300]
    return visit


# ---------------------------------------------------------------- the live stream


@dataclass
class LiveReport:
    """What one held-open live session saw: per-chunk round trips and verdict checks."""

    chunks: int = 0
    verdicts: int = 0  # updates that carried a verdict card
    wrong: int = 0  # verdicts that differ from the one computed here for the same sound
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # chunk sent -> its update received
    opened: float | None = None
    closed: float | None = None


def live_chunks(folder: Path, seconds: float = LIVE_SECONDS) -> list[Path]:
    """One-second microphone chunks (48 kHz WAV) of a synthetic speech signal."""
    y = speech_like(seconds, LIVE_CHUNK_RATE, seed=99)
    step = int(app.LIVE_STREAM_EVERY * LIVE_CHUNK_RATE)
    paths = []
    for i in range(0, y.size - step + 1, step):
        path = folder / f"live-{i // step:03d}.wav"
        write_wav(path, y[i : i + step], LIVE_CHUNK_RATE)
        paths.append(path)
    return paths


def live_expectations(clf: EmotionClassifier, chunks: Sequence[Path]) -> list[str | None]:
    """The emotion the live tab should show after each chunk, were it judged then
    (:func:`ser_core.serve.gradio_app.live_step` with a clock that always allows a verdict)."""
    session, out = None, []
    for i, chunk in enumerate(chunks):
        session, _ = app.live_step(clf, session, str(chunk), now=10.0 * (i + 1))
        out.append(session.current.emotion if session.current is not None else None)
    return out


def _stream_fn_index(config: dict) -> tuple[int, int]:
    """``(fn_index, trigger_id)`` of the microphone's ``stream`` event in the page config."""
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "live-in"}
    for index, dep in enumerate(config["dependencies"]):
        for target, event in dep["targets"]:
            if target in ids and event == "stream":
                return dep.get("id", index), target
    raise LookupError("the page has no live stream event")


def drive_live(
    url: str,
    chunks: Sequence[Path],
    expected: Sequence[str | None],
    stop: threading.Event,
    *,
    deadline: float,
    report: LiveReport,
) -> None:
    """Hold one live session open the way the browser does: join the stream event, then post a
    chunk every :data:`ser_core.serve.gradio_app.LIVE_STREAM_EVERY` seconds after each update, until
    ``stop`` is set, the deadline passes or the server's time limit ends the stream. Chunks
    cycle over ``chunks``; verdicts are checked only on the first pass."""
    import httpx

    api = url.rstrip("/") + "/gradio_api"
    session = uuid.uuid4().hex
    with httpx.Client(timeout=30) as http:
        fn_index, trigger = _stream_fn_index(http.get(url.rstrip("/") + "/config").json())

        def body(i: int) -> dict:
            with open(chunks[i % len(chunks)], "rb") as fh:
                path = http.post(f"{api}/upload", files=[("files", ("chunk.wav", fh, "audio/wav"))]).json()[0]
            # the microphone chunk, then the two session states (the live session, the calibrated voice)
            data = [{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "chunk.wav"}, None, None]
            return {
                "data": data,
                "fn_index": fn_index,
                "trigger_id": trigger,
                "session_hash": session,
                "event_data": None,
            }

        sent = time.monotonic()
        joined = http.post(f"{api}/queue/join", json=body(0))
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        report.opened = time.monotonic()
        i = 0
        with http.stream("GET", f"{api}/queue/data", params={"session_hash": session}, timeout=None) as sse:
            for line in sse.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg")
                if kind in ("process_streaming", "process_generating", "process_completed"):
                    if not msg.get("success", True):
                        report.errors.append(json.dumps(msg.get("output"))[:300])
                    else:
                        report.latencies.append(time.monotonic() - sent)
                        report.chunks += 1
                        card = next(
                            (d for d in msg["output"].get("data", []) if isinstance(d, str) and "data-emotion=" in d),
                            None,
                        )
                        if card is not None:
                            report.verdicts += 1
                            shown = re.search(r'data-emotion="([^"]+)"', card).group(1)
                            if i < len(chunks) and shown != expected[i]:
                                report.wrong += 1
                    if kind == "process_completed":
                        break
                    if stop.is_set() or time.monotonic() > deadline:
                        http.post(f"{api}/stream/{event_id}/close")
                        continue  # the server answers the close with process_completed
                    time.sleep(max(0.0, app.LIVE_STREAM_EVERY - (time.monotonic() - sent)))
                    i += 1
                    nxt = body(i)
                    sent = time.monotonic()
                    http.post(f"{api}/stream/{event_id}", json=nxt).raise_for_status()
                elif kind in ("unexpected_error", "close_stream"):
                    report.errors.append(json.dumps(msg)[:300])
                    break
        report.closed = time.monotonic()


# ---------------------------------------------------------------- the load


@dataclass
class LoadReport:
    clients: int
    answers: list[Answer]
    wall: float  # first request sent -> last answer (seconds)
    started: float
    ended: float
    visit: Visit | None
    live: LiveReport | None
    connect_errors: list[str]

    @property
    def answered(self) -> list[Answer]:
        return [a for a in self.answers if a.latency is not None]


def run_load(
    url: str,
    files: Sequence[Path],
    expected: dict[str, dict],
    *,
    clients: int = 20,
    per_client: int = 5,
    timeout: float = 120.0,
    visitor: bool = True,
    live: tuple[list[Path], list[str | None]] | None = None,
) -> LoadReport:
    """``clients`` threads, each with its own client, send ``per_client`` files at once (client
    ``c`` sends files ``c*per_client + j`` modulo the set, so neighbours differ). Once a
    quarter of the requests are answered a new visitor arrives; ``live`` (chunks and their
    expected verdicts) holds a live session open for the whole load. Stops at ``timeout``."""
    deadline = time.monotonic() + timeout
    names = [str(f) for f in files]
    total = clients * per_client
    answers: list[Answer] = []
    connect_errors: list[str] = []
    lock = threading.Lock()
    quarter = threading.Event()
    stop_live = threading.Event()
    go = threading.Barrier(clients + 1, timeout=timeout)

    def client_job(c: int) -> None:
        try:
            client = connect(url)
        except Exception as e:
            with lock:
                connect_errors.append(f"{type(e).__name__}: {e}"[:300])
            client = None
        try:
            go.wait()
        except threading.BrokenBarrierError:
            return
        for j in range(per_client):
            path = names[(c * per_client + j) % len(names)]
            if client is None:
                result = Answer(c, path, error="could not connect")
            else:
                result = ask(client, path, expected[path], deadline=deadline, who=c)
            with lock:
                answers.append(result)
                if sum(a.latency is not None for a in answers) >= total / 4:
                    quarter.set()

    threads = [threading.Thread(target=client_job, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    live_report = LiveReport() if live else None
    live_thread = None
    if live:

        def live_job() -> None:
            try:
                drive_live(url, live[0], live[1], stop_live, deadline=deadline, report=live_report)
            except Exception as e:
                live_report.errors.append(f"{type(e).__name__}: {e}"[:300])

        live_thread = threading.Thread(target=live_job, daemon=True)
        live_thread.start()
        for _ in range(int(10 / 0.05)):  # wait for the stream to be open before the load starts
            if live_report.opened or live_report.errors:
                break
            time.sleep(0.05)
    go.wait()
    started = time.monotonic()
    visit = None
    if visitor:
        quarter.wait(max(0.0, deadline - time.monotonic()))
        path = names[len(names) // 2]
        visit = new_visitor(url, path, expected[path], deadline=deadline)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stop_live.set()
    if live_thread is not None:
        live_thread.join(max(1.0, deadline + 5 - time.monotonic()))
    with lock:
        done = list(answers)
    ended = max((a.finished for a in done if a.finished), default=time.monotonic())
    return LoadReport(clients, done, ended - started, started, ended, visit, live_report, connect_errors)


# ---------------------------------------------------------------- report


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def format_report(report: LoadReport, requested: int) -> str:
    """The table: clients, requests, errors, wrong answers, throughput, latencies; then the
    new visitor and the live session."""
    lat = [a.latency for a in report.answered]
    errors = [a for a in report.answers if a.error]
    wrong = [a for a in report.answered if not a.correct]
    rows = [
        ("clients", f"{report.clients}"),
        ("requests sent / answered", f"{requested} / {len(report.answered)}"),
        ("errors (incl. unanswered)", f"{len(errors) + requested - len(report.answers)}"),
        ("wrong answers", f"{len(wrong)}"),
        ("throughput", f"{len(lat) / report.wall:.2f} req/s over {report.wall:.1f} s" if report.wall > 0 else "-"),
        (
            "latency p50 / p95 / max",
            f"{percentile(lat, 50):.2f} / {percentile(lat, 95):.2f} / {max(lat, default=float('nan')):.2f} s",
        ),
    ]
    v = report.visit
    if v is not None:
        a = v.answer
        during = f"arrived during load={v.arrived < report.ended}, answered before the load's last answer={bool(a and a.finished and a.finished < report.ended)}"
        rows += [
            (
                "new visitor: page GET",
                f"{v.page_seconds:.2f} s, ok={v.page_ok}" if v.page_seconds is not None else f"failed: {v.error}",
            ),
            (
                "new visitor: connect",
                f"{v.connect_seconds:.2f} s" if v.connect_seconds is not None else f"failed: {v.error}",
            ),
            (
                "new visitor: predict",
                (
                    f"{a.latency:.2f} s, correct={a.correct}; {during}"
                    if a and a.latency
                    else f"failed: {a.error if a else v.error}"
                ),
            ),
        ]
    live = report.live
    if live is not None:
        held = (live.closed or time.monotonic()) - (live.opened or time.monotonic())
        rows += [
            (
                "live session: held open",
                f"{held:.1f} s, {live.chunks} chunks, {live.verdicts} verdicts, {live.wrong} wrong",
            ),
            (
                "live: first update / later chunk p50, p95",
                f"{live.latencies[0] if live.latencies else float('nan'):.2f} s / "
                f"{percentile(live.latencies[1:], 50):.2f}, {percentile(live.latencies[1:], 95):.2f} s",
            ),
            ("live errors", f"{len(live.errors)}" + (f": {live.errors[0]}" if live.errors else "")),
        ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {val}" for k, val in rows]
    for a in (errors + wrong)[:5]:
        lines.append(f"  e.g. client {a.client}, {Path(a.file).name}: {a.error or 'wrong answer'}")
    lines += [f"  connect error: {e}" for e in report.connect_errors[:3]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent visitors, each with its own client")
    parser.add_argument("--requests", type=int, default=5, help="files each visitor sends, one after another")
    parser.add_argument("--timeout", type=float, default=120.0, help="the whole load stops after this many seconds")
    parser.add_argument("--artifacts", default=None, help="model bundle (default: $SER_ARTIFACTS or artifacts/)")
    parser.add_argument("--in-process", action="store_true", help="serve the demo from a thread of this process")
    parser.add_argument("--no-live", action="store_true", help="do not hold a live session open during the load")
    args = parser.parse_args(argv)

    clf = EmotionClassifier.load(args.artifacts)
    with tempfile.TemporaryDirectory(prefix="ser-load-") as tmp:
        expected = expected_answers(clf, make_inputs(Path(tmp)))
        files = [Path(f) for f in expected]
        chunks = live_chunks(Path(tmp))
        live = None if args.no_live else (chunks, live_expectations(clf, chunks))
        print(
            f"{len(files)} files with distinct answers ({sum(f.is_relative_to(RAVDESS) for f in files)} RAVDESS); "
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for name, lib, demo, diff in library_disagreements(clf, expected):
            print(f"note: {name}: EmotionClassifier.predict says {lib}, /predict says {demo} (max |dp| {diff:.2g})")
        log = Path(tmp) / "demo.log"
        server = serve_in_process(clf) if args.in_process else serve_subprocess(args.artifacts, log)
        with server as url:
            report = run_load(
                url, files, expected, clients=args.clients, per_client=args.requests, timeout=args.timeout, live=live
            )
        print(format_report(report, args.clients * args.requests))
        if log.exists():
            print(f"server log: {log.read_text().count('Traceback')} tracebacks")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    bad = len(report.answered) != args.clients * args.requests or any(not a.correct for a in report.answers)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
