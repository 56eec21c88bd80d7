"""Attack and load on the REST API (issues 14 and 21), measured from outside as a client would.

    .venv/bin/python benchmarks/load_api.py [--repo DIR] [--only PROBE ...] [--skip PROBE ...]
                                            [--clients 50] [--seconds 30] [--hostile 4]
                                            [--attack-rate 70]

Starts ``python -m ser_core serve`` from ``--repo`` (default: this checkout; pass another
checkout to measure an earlier release the same way) on 127.0.0.1 and a free port, a fresh
server for each probe (so work one probe leaves running cannot slow the next), and runs:

1. **hour**: a one-hour FLAC at a constant level (180 KB) on ``/v1/predict``: the time to the
   answer, and the server's CPU time until it and in the 5 s after.
2. **memory**: the worst timelines a client can ask for (10 minutes of speech at the smallest
   hop accepted; ten hours of silence at window 0.3 s, hop 0.05 s): the server's peak memory.
3. **leave**: a client asks for a 10-minute timeline and hangs up after 1 s: server CPU after.
4. **references**: ``/v1/predict`` with a 3 s clip and 60 references of 119 s (Opus, 39 MB),
   then with 500 references of 119 s (low-rate Opus, 57 MiB): the time to the answer and the
   server's CPU until it and in the 5 s after (the client gives up after 60 s).
5. **lane**: two reference-heavy requests at once (the issue's 60 x 119 s, then the heaviest a
   server of this release accepts: a 10-minute recording and four references of 29.5 s), and
   meanwhile five 3 s clips one after another: each clip's time to its answer.
6. **leave-references**: requests with references whose client hangs up while they are
   processed (the issue's; a 3 s clip with one reference of 119 s of Opus, about the most
   this release accepts, and with 4 x 29.5 s of FLAC): the server's CPU time in each of the 5 seconds after.
7. **segments**: ten 10-minute ``/v1/segments`` in a row: resident memory at start, its peak
   (VmHWM) after the first and after the tenth, and resident memory after the tenth.
8. **load**: ``--clients`` clients post real 3 s RAVDESS clips to ``/v1/predict`` for
   ``--seconds``, half of them with a reference recording of the same actor: alone; beside
   ``--hostile`` clients that keep posting one-hour FLACs, each the next as soon as the last
   is answered (so the faster a server refuses them, the more they send); and beside an
   attack of ``--attack-rate`` one-hour FLACs a second, sent whatever the answers, as an
   attacker would. Every answer is checked (its file, and ``adapted`` for those with a
   reference). Answered, errors, p50/p95/max latency, throughput, the attack's answers.
9. **sigterm**: SIGTERM during a 10-minute timeline, then during reference processing (the
   issue's request, and the heaviest accepted one): the in-flight answer and the time until
   the server process is gone.
10. **voice**: saved voices (issue 20). Requests refused before any decode (40 recording fields
   of 119 s on ``POST /v1/voice``, two recordings of 590 s, a 2 MiB voice beside 4 references of
   29.5 s, a damaged voice beside a 10-minute recording): the time to the answer and the server's
   CPU until it; what a ``voice`` field costs a prediction (median of 20 3 s clips without and with
   a voice of reference and session speech, about 100 kB); ``POST /v1/voice`` with 16 clips and
   with a 119 s reference; a client leaving, and SIGTERM, during ``POST /v1/voice`` with 10 minutes
   of recordings.

Every loop is bounded by ``--seconds``, a count or a timeout; every server is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
RAVDESS = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
HOST = "127.0.0.1"
SR = 16_000
PROBES = (
    "hour",
    "memory",
    "leave",
    "references",
    "lane",
    "leave-references",
    "segments",
    "load",
    "sigterm",
    "voice",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """``python -m ser_core serve`` from a checkout, on a free loopback port, until the block ends."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        python = self.repo / ".venv" / "bin" / "python"
        self.proc = subprocess.Popen(
            [str(python if python.exists() else sys.executable), "-m", "ser_core", "serve", "--port", str(self.port)],
            cwd=self.repo,
            env={**os.environ, "PYTHONPATH": str(self.repo)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(600):  # bounded: 60 s for the model to load
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    self.process = psutil.Process(self.proc.pid)
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise SystemExit("the server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cpu(self) -> float:
        """CPU seconds the server has used."""
        times = self.process.cpu_times()
        return times.user + times.system

    def peak_mb(self) -> float:
        return _status_mb(self.proc.pid, "VmHWM")

    def rss_mb(self) -> float:
        return _status_mb(self.proc.pid, "VmRSS")


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


Files = list[tuple[str, tuple[str, bytes]]]


def upload(path: Path, references: list[Path] = ()) -> Files:
    """The multipart fields of a request: ``file`` and repeated ``reference``."""
    return [("file", (path.name, path.read_bytes()))] + [("reference", (r.name, r.read_bytes())) for r in references]


def post(url: str, files: Files, timeout: float = 600, **params: float) -> tuple[float, httpx.Response | str]:
    started = time.perf_counter()
    try:
        r = httpx.post(url, params=params, files=files, timeout=timeout)
        return time.perf_counter() - started, r
    except httpx.HTTPError as e:
        return time.perf_counter() - started, type(e).__name__


def describe(answer: httpx.Response | str) -> str:
    if isinstance(answer, str):
        return answer
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"{answer.status_code} {answer.headers.get('content-type')}: {answer.text[:60]!r}"
    return f"{answer.status_code}: {answer.json().get('error', 'ok')[:100]}"


def speech(seconds: float, skip: int = 0) -> np.ndarray:
    """``seconds`` of real speech: RAVDESS files one after another, from the ``skip``-th."""
    parts, total = [], 0
    for clip in sorted(RAVDESS.glob("Actor_*/*.flac"))[skip:]:
        y, _ = sf.read(clip, dtype="float32")
        parts.append(y)
        total += y.size
        if total >= seconds * SR:
            break
    return np.concatenate(parts)[: int(seconds * SR)]


def make_files(folder: Path) -> dict[str, Path]:
    """The probes' recordings, written to ``folder``."""
    from ser_core.audio import encode

    files = {"hour": folder / "hour-level.flac", "silence": folder / "ten-hours-silence.flac"}
    sf.write(files["hour"], np.full(3600 * SR, 0.3, np.float32), SR)
    with sf.SoundFile(files["silence"], "w", SR, 1) as f:
        for _ in range(10):
            f.write(np.zeros(3600 * SR, np.float32))
    files["ten"] = folder / "ten-minutes.flac"
    sf.write(files["ten"], speech(590.0), SR)  # just under the 10-minute limit
    reference = speech(119.0, skip=600)
    for name, bit_rate in (("ref-119s-hi", 52_000), ("ref-119s-lo", 10_000)):
        files[name] = encode(
            folder / f"{name}.opus", reference, SR, container="ogg", codec="libopus", bit_rate=bit_rate
        )
    for i in range(4):
        files[f"ref-29s-{i}"] = folder / f"ref-29s-{i}.flac"
        sf.write(files[f"ref-29s-{i}"], speech(29.5, skip=700 + 40 * i), SR)
    return files


def ravdess_clips() -> list[tuple[Path, Path]]:
    """Real 3-4 s clips, each with a neutral clip of the same actor as its reference."""
    pairs = []
    for path in sorted(RAVDESS.glob("Actor_*/*.flac")):
        if 3.0 <= sf.info(path).duration <= 4.0:
            neutral = path.parent / f"03-01-01-01-01-01-{path.parent.name[-2:]}.flac"
            pairs.append((path, neutral if neutral.exists() else path))
        if len(pairs) == 100:
            break
    return pairs


def in_thread(fn: Callable[..., object], *args: object, **kwargs: object) -> tuple[threading.Thread, dict]:
    """``fn(*args, **kwargs)`` in a daemon thread; its result lands in the dict under ``result``."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(result=fn(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, out


# ---------------------------------------------------------------- probes


def probe_hour(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    with Server(repo) as server:
        before = server.cpu()
        took, answer = post(f"{server.url}/v1/predict", upload(files["hour"]))
        after = server.cpu()
        time.sleep(5)  # CPU spent after the answer: work that went on without a client
        yield (
            f"hour FLAC on /v1/predict: {describe(answer)[:40]} in {took:.2f} s; server CPU until then "
            f"{after - before:.2f} s, in the 5 s after {server.cpu() - after:.2f} s"
        )


def probe_memory(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    with Server(repo) as server:
        for name, params in (("ten", {"window": 0.3, "hop": 0.25}), ("silence", {"window": 0.3, "hop": 0.05})):
            took, answer = post(f"{server.url}/v1/timeline", upload(files[name]), **params)
            size = len(answer.content) / 2**20 if not isinstance(answer, str) else 0
            yield (
                f"timeline {files[name].name} {params}: {took:.1f} s, {describe(answer)[:50]}, {size:.1f} MB of "
                f"JSON; server peak RSS so far {server.peak_mb():.0f} MB"
            )


def probe_leave(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    with Server(repo) as server:
        took, answer = post(f"{server.url}/v1/timeline", upload(files["ten"]), timeout=1.0, window=3.5, hop=0.25)
        left = server.cpu()
        time.sleep(15)
        yield (
            f"10-minute timeline, client gone after {took:.1f} s ({describe(answer)}): server CPU in the "
            f"15 s after {server.cpu() - left:.2f} s"
        )


def heaviest(files: dict[str, Path]) -> Files:
    """The heaviest request with references this release accepts: 10 minutes and 4 x 29.5 s."""
    return upload(files["ten"], [files[f"ref-29s-{i}"] for i in range(4)])


def issues(files: dict[str, Path], clip: Path) -> Files:
    """The issue's request: a 3 s clip and 60 references of 119 s (Opus, 39 MB)."""
    return upload(clip, [files["ref-119s-hi"]] * 60)


def probe_references(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    clip = args.clips[0][0]
    for label, references in (
        ("60 x 119 s", [files["ref-119s-hi"]] * 60),
        ("500 x 119 s", [files["ref-119s-lo"]] * 500),
    ):
        fields = upload(clip, references)
        size = sum(len(content) for _, (_, content) in fields) / 2**20
        with Server(repo) as server:
            before = server.cpu()
            took, answer = post(f"{server.url}/v1/predict", fields, timeout=60)
            after = server.cpu()
            time.sleep(5)
            yield (
                f"{label} references ({size:.1f} MiB) on /v1/predict: {describe(answer)[:70]} after {took:.2f} s; "
                f"server CPU until then {after - before:.2f} s, in the 5 s after {server.cpu() - after:.2f} s"
            )


def probe_lane(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    clip = upload(args.clips[1][0])
    for label, fields, route in (
        ("the issue's 60 x 119 s", issues(files, args.clips[0][0]), "/v1/predict"),
        ("10 minutes + 4 x 29.5 s", heaviest(files), "/v1/predict"),
    ):
        with Server(repo) as server:
            heavy = [in_thread(post, f"{server.url}{route}", fields, timeout=120) for _ in range(2)]
            time.sleep(1.0)  # both are in the server
            clips = [post(f"{server.url}/v1/predict", clip, timeout=60) for _ in range(5)]
            for thread, _ in heavy:
                thread.join(130)
            answers = "; ".join(f"{describe(out['result'][1])[:28]} in {out['result'][0]:.1f} s" for _, out in heavy)
            answered = ", ".join(f"{t:.2f} s ({describe(r)[:3]})" for t, r in clips)
            yield f"lane, two of {label} on {route}: 3 s clips answered in {answered}; heavy: {answers}"


def probe_leave_references(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    clip = args.clips[0][0]
    for label, fields, wait in (
        ("the issue's 60 x 119 s", issues(files, clip), 1.5),
        ("a 3 s clip + 119 s of Opus", upload(clip, [files["ref-119s-hi"]]), 0.3),
        ("a 3 s clip + 4 x 29.5 s", upload(clip, [files[f"ref-29s-{i}"] for i in range(4)]), 0.3),
    ):
        yield f"{label}, {left_during(repo, '/v1/predict', fields, wait)}"


def left_during(repo: Path, route: str, fields: Files, wait: float) -> str:
    """A client that hangs up ``wait`` seconds into a request to a fresh server: the server's CPU after."""
    with Server(repo) as server:
        took, answer = post(f"{server.url}{route}", fields, timeout=wait)
        seconds = []
        for _ in range(5):
            before = server.cpu()
            time.sleep(1.0)
            seconds.append(server.cpu() - before)
        return (
            f"client gone after {took:.1f} s ({describe(answer)[:40]}): server CPU in each second "
            f"after: {', '.join(f'{s:.2f}' for s in seconds)} s"
        )


def probe_segments(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    with Server(repo) as server:
        start = server.rss_mb()
        fields = upload(files["ten"])
        took, answer = post(f"{server.url}/v1/segments", fields)
        first_peak, first_rss = server.peak_mb(), server.rss_mb()
        times = [took]
        for _ in range(9):
            took, answer = post(f"{server.url}/v1/segments", fields)
            times.append(took)
        yield (
            f"ten 10-minute /v1/segments ({describe(answer)[:10]}, {statistics.median(times):.1f} s each): RSS at "
            f"start {start:.0f} MB; after the first: peak {first_peak:.0f} MB, RSS {first_rss:.0f} MB; after ten: "
            f"peak {server.peak_mb():.0f} MB, RSS {server.rss_mb():.0f} MB ({server.rss_mb() - start:+.0f} MB)"
        )


Attack = tuple[str, float]  # ("none", 0), ("closed", clients) or ("open", requests per second)


async def load(
    url: str, pairs: list[tuple[Path, Path]], hostile: Path, clients: int, attack: Attack, seconds: float
) -> dict:
    """``clients`` clients posting clips (half with a reference) for ``seconds``, beside an attack of
    one-hour files: ``("closed", n)``, n clients each sending the next when the last is answered;
    ``("open", r)``, r requests a second whatever the answers, as an attacker sends them."""
    latencies: list[float] = []
    errors: list[str] = []
    statuses: list[int | str] = []
    deadline = time.perf_counter() + seconds
    payloads = [((p.name, p.read_bytes()), (r.name, r.read_bytes())) for p, r in pairs]
    hostile_payload = hostile.read_bytes()

    async def client(i: int, http: httpx.AsyncClient) -> None:
        k, referenced = i, i % 2 == 1  # half of the clients send a reference with every clip
        while time.perf_counter() < deadline:
            (name, data), reference = payloads[k % len(payloads)]
            k += clients
            fields = [("file", (name, data))] + ([("reference", reference)] if referenced else [])
            started = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/predict", files=fields)
                body = r.json() if r.status_code == 200 else {}
                if body.get("path") != name or body.get("adapted") != ("reference" if referenced else None):
                    errors.append(f"{r.status_code} {r.text[:80]}")
                else:
                    latencies.append(time.perf_counter() - started)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)

    async def hour(http: httpx.AsyncClient) -> None:
        try:
            r = await http.post(f"{url}/v1/predict", files={"file": ("hour.flac", hostile_payload)})
            statuses.append(r.status_code)
        except httpx.HTTPError as e:
            statuses.append(type(e).__name__)

    async def closed(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            await hour(http)

    async def opened(http: httpx.AsyncClient, rate: float) -> None:
        sent = []
        while time.perf_counter() < deadline:
            sent.append(asyncio.create_task(hour(http)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*sent)

    kind, amount = attack
    limits = httpx.Limits(max_connections=clients + (int(amount) if kind == "closed" else 1000) + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(
            *(client(i, http) for i in range(clients)),
            *(closed(http) for _ in range(int(amount) if kind == "closed" else 0)),
            *([opened(http, amount)] if kind == "open" else []),
        )
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "answered": len(latencies),
        "errors": len(errors),
        "first errors": errors[:3],
        "hostile answers": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
        "p50 ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p95 ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "max ms": 1000 * latencies[-1] if latencies else float("nan"),
        "requests/s": len(latencies) / elapsed,
    }


def probe_load(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    attacks: list[Attack] = [("none", 0)]
    attacks += [("closed", n) for n in args.hostile if n] + [("open", r) for r in args.attack_rate if r]
    for attack in attacks:
        with Server(repo) as server:
            before = server.cpu()
            result = asyncio.run(load(server.url, args.clips, files["hour"], args.clients, attack, args.seconds))
            result["server CPU ms per answer"] = 1000 * (server.cpu() - before) / max(1, result["answered"])
            beside = {
                "none": "alone",
                "closed": f"beside {attack[1]:g} clients posting one-hour files, each when the last is answered",
                "open": f"beside {attack[1]:g} one-hour files a second",
            }[attack[0]]
            yield f"load: {args.clients} clients x {args.seconds:g} s on /v1/predict, half with a reference, {beside}"
            for key, value in result.items():
                yield f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}"
            yield f"  server peak RSS {server.peak_mb():.0f} MB"


def probe_sigterm(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    for label, route, fields, params, wait in (
        ("a 10-minute timeline", "/v1/timeline", upload(files["ten"]), {"window": 3.5, "hop": 0.25}, 1.5),
        ("the issue's 60 x 119 s references", "/v1/predict", issues(files, args.clips[0][0]), {}, 1.5),
        ("10 minutes + 4 x 29.5 s of references", "/v1/predict", heaviest(files), {}, 0.5),
    ):
        yield f"SIGTERM {wait:g} s into {label}: {sigterm_during(repo, route, fields, wait, **params)}"


def sigterm_during(repo: Path, route: str, fields: Files, wait: float, **params: float) -> str:
    """SIGTERM to a fresh server ``wait`` seconds into a request: how soon it exited, and the answer."""
    with Server(repo) as server:
        thread, out = in_thread(post, f"{server.url}{route}", fields, timeout=60, **params)
        time.sleep(wait)
        started = time.perf_counter()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(120)
            gone = f"exited after {time.perf_counter() - started:.2f} s"
        except subprocess.TimeoutExpired:
            gone = "still running after 120 s"
        thread.join(60)
        answer = describe(out["result"][1]) if "result" in out else "no answer"
        return f"{gone}; the request got {answer[:80]}"


def probe_voice(repo: Path, files: dict[str, Path], args: argparse.Namespace) -> Iterator[str]:
    clip = args.clips[0][0]
    long, ten = files["ref-119s-hi"].read_bytes(), files["ten"].read_bytes()
    with Server(repo) as server:
        learned = httpx.post(
            f"{server.url}/v1/voice",
            files=[("reference", (clip.name, args.clips[0][1].read_bytes()))]
            + [("recording", (c.name, c.read_bytes())) for c, _ in args.clips[1:17]],
            timeout=120,
        )
        if learned.status_code != 200:
            yield f"voice: POST /v1/voice failed: {describe(learned)}"
            return
        voice = learned.text
        refused = (
            ("40 recording fields of 119 s", "/v1/voice", [("recording", ("r.opus", long))] * 40),
            ("two recordings of 590 s", "/v1/voice", [("recording", ("ten.flac", ten))] * 2),
            (
                "a 2 MiB voice and 4 references of 29.5 s",
                "/v1/predict",
                upload(clip, [files[f"ref-29s-{i}"] for i in range(4)]) + [("voice", (None, " " * 2**21))],
            ),
            (
                "a damaged voice and a 10-minute recording",
                "/v1/timeline",
                [("file", ("ten.flac", ten)), ("voice", (None, voice[: len(voice) // 2]))],
            ),
        )
        for label, route, fields in refused:
            before = server.cpu()
            took, answer = post(f"{server.url}{route}", fields, timeout=60)
            yield (
                f"voice: {label} on {route}: {describe(answer)[:70]} after {took:.2f} s; "
                f"server CPU until then {server.cpu() - before:.2f} s"
            )
        plain, voiced = [], []
        for path, _ in args.clips[20:40]:
            fields = upload(path)
            plain.append(post(f"{server.url}/v1/predict", fields)[0])
            took, answer = post(f"{server.url}/v1/predict", fields + [("voice", (None, voice))])
            assert not isinstance(answer, str) and answer.json()["adapted"] == "reference", describe(answer)
            voiced.append(took)
        yield (
            f"voice: a 3 s prediction without a voice {1000 * statistics.median(plain):.0f} ms, with a voice of "
            f"{len(voice) / 1024:.0f} kB {1000 * statistics.median(voiced):.0f} ms (medians of {len(plain)})"
        )
        for label, fields in (
            ("16 clips of 3-4 s", [("recording", (c.name, c.read_bytes())) for c, _ in args.clips[1:17]]),
            ("a reference of 119 s", [("reference", ("r.opus", long))]),
        ):
            took, answer = post(f"{server.url}/v1/voice", fields)
            yield f"voice: POST /v1/voice with {label}: {describe(answer)[:12]} in {took:.2f} s"
    ten_minutes = [("recording", ("ten.flac", ten))]
    yield f"voice: 10 minutes of recordings, {left_during(repo, '/v1/voice', ten_minutes, 1.0)}"
    yield f"voice: SIGTERM 1.5 s into 10 minutes of recordings: {sigterm_during(repo, '/v1/voice', ten_minutes, 1.5)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose server is measured")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--hostile", type=int, nargs="*", default=[4], help="a load run beside this many clients posting one-hour files"
    )
    parser.add_argument(
        "--attack-rate",
        type=float,
        nargs="*",
        default=[70.0],
        help="a load run beside this many one-hour files a second",
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--only", nargs="*", default=list(PROBES), choices=PROBES)
    parser.add_argument("--skip", nargs="*", default=[], choices=PROBES)
    args = parser.parse_args()
    probes = {name: globals()[f"probe_{name.replace('-', '_')}"] for name in PROBES}
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="ser-load-") as tmp:
        files = make_files(Path(tmp))
        args.clips = ravdess_clips()
        print(f"server: {repo}  (load average {os.getloadavg()[0]:.1f})", flush=True)
        for name in PROBES:
            if name in args.only and name not in args.skip:
                for line in probes[name](repo, files, args):
                    print(line, flush=True)
                with contextlib.suppress(OSError):
                    print(f"  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
