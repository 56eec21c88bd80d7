"""The live stream (GET /v1/stream, issue 23), measured end to end as clients see it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_stream.py [--streams 50] [--minutes 10] [--sentences 24]
                                                             [--soak-minutes 30]

Starts ``python -m ser_core serve`` on 127.0.0.1 and a free port, then:

1. **latency**: one stream of ``--sentences`` real RAVDESS sentences (several actors) joined by
   0.3-1.5 s pauses, sent at real-time pace by the library's client (a 50 ms message every
   50 ms). For each utterance, the time from the end of the utterance (its ``end``, as recorded:
   ``started + end``) to the arrival of its verdict; p50, p95, max. The same file through
   ``timeline --segments --json``: the utterances must match (boundaries within 50 ms, same
   verdicts).
2. **load**: ``--streams`` simultaneous real-time streams for ``--minutes`` each (started 0.1 s
   apart), each from its own place in a pool of RAVDESS sentences joined by pauses. Counts
   errors (an error event, a refused or broken stream, a stream without ``done``), the latency
   of every verdict, and samples the server's resident memory every 5 s: the figure at one
   minute, the end, the peak, and the slope over the run after the first minute and over its
   second half.
3. **soak** (with ``--soak-minutes``): 20 stream sessions in this process, without a network,
   each fed that many minutes of sentences in 50 ms messages as fast as they go: the process's
   resident memory and the memory Python traces, every 2 minutes of audio. Shows that a long
   stream's memory stops growing once its buffers have met its longest utterance.

The load average and the busiest other processes are printed before and after, since the
machine is shared. Every loop is bounded by the run's length; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ser_core.serve.client import StreamClient  # noqa: E402

RAVDESS = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
HOST = "127.0.0.1"
SR = 16_000
PAUSES = (0.3, 1.5)  # s of silence added between sentences (RAVDESS files have some of their own)
BOUNDARY = 0.05  # s: a stream's utterance matches --segments' within this
MEMORY_EVERY = 5.0  # s between samples of the server's memory
TARGETS = {"latency p95": 0.4, "load p95": 0.8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def sentences(count: int, seed: int) -> np.ndarray:
    """``count`` RAVDESS sentences of several actors in a row, each followed by a random pause."""
    files = sorted(RAVDESS.rglob("*.flac"))
    if not files:
        sys.exit(f"RAVDESS is not at {RAVDESS}")
    rng = np.random.default_rng(seed)
    parts = []
    for i in rng.permutation(len(files))[:count]:
        y, sr = sf.read(str(files[i]), dtype="float32")
        assert sr == SR
        parts += [y, np.zeros(int(rng.uniform(*PAUSES) * SR), np.float32)]
    return np.concatenate(parts)


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser_core", "serve", "--host", HOST, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start")


def machine() -> str:
    """The load average and the three busiest other processes (CPU % over a short look)."""
    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            if p.pid != os.getpid():
                busy.append((p.cpu_percent(None), " ".join(p.info["cmdline"] or [p.info["name"] or "?"])[:70]))
        except psutil.Error:
            continue
    busy.sort(reverse=True)
    top = "; ".join(f"{cpu:.0f}% {cmd}" for cpu, cmd in busy[:3])
    return f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; busiest: {top}"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def one_stream(url: str, y: np.ndarray, detector: str | None, latencies: dict[str, list[float]]) -> dict:
    """Stream ``y`` at real-time pace. Each verdict's latency goes into ``latencies["due"]`` (from
    when its utterance's end was recorded: the end-to-end figure) and ``latencies["sent"]`` (from
    when the client actually sent it: the server's part, whatever the client's own delays)."""
    client = StreamClient(url, detector=detector)
    found, outcome = [], "no done"
    try:
        async for event in client.events(y, SR):
            now = time.monotonic()
            if event["type"] == "utterance":
                found.append(event)
                latencies["due"].append(now - (client.started + event["end"]))
                sent = client.sent_at(event["end"])
                if sent is not None:
                    latencies["sent"].append(now - sent)
            elif event["type"] == "done":
                outcome = "done" if event["utterances"] == len(found) else "done with a wrong count"
            elif event["type"] == "error":
                outcome = f"error: {event['message']}"
    except Exception as e:  # a refused or broken stream is an error of the run, not of the benchmark
        outcome = f"{type(e).__name__}: {e}"
    latencies["client late"].append(client.late)
    return {"outcome": outcome, "utterances": found}


def report(latencies: dict[str, list[float]]) -> str:
    """The verdicts' latencies, end to end and the server's part, and how late the client was."""
    due, sent, late = latencies["due"], latencies["sent"], latencies["client late"]
    return (
        f"{len(due)} verdicts; after the end of an utterance: p50 {percentile(due, 50):.3f} s, "
        f"p95 {percentile(due, 95):.3f} s, max {max(due, default=float('nan')):.3f} s "
        f"(after the client sent it: p50 {percentile(sent, 50):.3f} s, p95 {percentile(sent, 95):.3f} s; "
        f"the client's pace slipped by at most {max(late, default=0):.3f} s)"
    )


def latency(url: str, count: int, detector: str | None) -> bool:
    y = sentences(count, seed=1)
    print(f"\n1. latency: one real-time stream of {count} sentences ({y.size / SR:.0f} s)", flush=True)
    latencies: dict[str, list[float]] = {"due": [], "sent": [], "client late": []}
    result = asyncio.run(one_stream(url, y, detector, latencies))
    print(f"   {result['outcome']}, {report(latencies)}")
    with tempfile.TemporaryDirectory(prefix="ser-bench-stream-") as tmp:
        path = Path(tmp) / "sentences.wav"
        sf.write(str(path), y, SR, subtype="FLOAT")  # the very samples the stream carried (16-bit exact)
        out = subprocess.run(
            [sys.executable, "-m", "ser_core", "timeline", "--segments", "--json", str(path)]
            + (["--detector", detector] if detector else []),
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
        )
    rows = json.loads(out.stdout)["utterances"]
    streamed = result["utterances"]
    same = len(rows) == len(streamed) and all(
        abs(a["start"] - b["start"]) <= BOUNDARY
        and abs(a["end"] - b["end"]) <= BOUNDARY
        and a.get("emotion") == b.get("emotion")
        for a, b in zip(streamed, rows, strict=False)
    )
    worst = max((abs(a[k] - b[k]) for a, b in zip(streamed, rows, strict=False) for k in ("start", "end")), default=0)
    print(
        f"   timeline --segments on the same file: {len(rows)} utterances, the stream {len(streamed)}; "
        f"largest boundary difference {worst * 1000:.0f} ms; verdicts {'the same' if same else 'DIFFERENT'}"
    )
    return result["outcome"] == "done" and same and percentile(latencies["due"], 95) <= TARGETS["latency p95"]


async def watch_memory(pid: int, samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    process = psutil.Process(pid)
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, process.memory_info().rss / 2**20))
        try:
            await asyncio.wait_for(stop.wait(), MEMORY_EVERY)
        except TimeoutError:
            pass


async def load_run(url: str, pid: int, streams: int, seconds: float, detector: str | None) -> bool:
    n = int(seconds * SR)
    pool = sentences(min(1440, int(2 * seconds / 4.0) + 20), seed=2)  # about twice a stream, so offsets differ
    pool = np.tile(pool, n // pool.size + 2)
    rng = np.random.default_rng(3)
    offsets = rng.integers(0, pool.size - n, streams)
    latencies: dict[str, list[float]] = {"due": [], "sent": [], "client late": []}
    memory: list[tuple[float, float]] = []
    stop = asyncio.Event()
    process = psutil.Process(pid)
    cpu0 = sum(process.cpu_times()[:2])
    watcher = asyncio.create_task(watch_memory(pid, memory, stop))

    async def staggered(i: int) -> dict:
        await asyncio.sleep(0.1 * i)
        return await one_stream(url, pool[offsets[i] : offsets[i] + n], detector, latencies)

    t0 = time.monotonic()
    results = await asyncio.gather(*(staggered(i) for i in range(streams)))
    wall = time.monotonic() - t0
    stop.set()
    await watcher
    cpu = sum(process.cpu_times()[:2]) - cpu0
    errors = [r["outcome"] for r in results if r["outcome"] != "done"]
    print(
        f"   {streams - len(errors)} of {streams} streams done, {len(errors)} errors"
        + (f" (first: {errors[0]})" if errors else "")
        + f"; {report(latencies)}"
    )
    print(f"   server CPU {cpu:.0f} s in {wall:.0f} s ({100 * cpu / wall:.0f}% of one core)")
    after = [(t, mb) for t, mb in memory if t >= 60] or memory
    half = [(t, mb) for t, mb in memory if t >= seconds / 2] or memory
    print(
        f"   server memory: {memory[0][1]:.0f} MB at the start, {after[0][1]:.0f} MB at {after[0][0]:.0f} s, "
        f"{memory[-1][1]:.0f} MB at the end, peak {max(mb for _, mb in memory):.0f} MB; "
        f"slope after the first minute {slope(after):+.2f} MB/minute, over the second half {slope(half):+.2f}"
    )
    print("   memory every minute (MB): " + " ".join(f"{mb:.0f}" for t, mb in memory if abs(t % 60) < MEMORY_EVERY))
    return not errors and percentile(latencies["due"], 95) <= TARGETS["load p95"]


def slope(samples: list[tuple[float, float]]) -> float:
    """MB a minute, fitted to ``(seconds, MB)`` samples."""
    if len(samples) < 3:
        return 0.0
    return float(np.polyfit([t / 60 for t, _ in samples], [mb for _, mb in samples], 1)[0])


def soak(minutes: float, sessions: int = 20) -> None:
    """Long streams in this process, without a network: memory every 2 minutes of audio."""
    import tracemalloc

    from ser_core import EmotionClassifier
    from ser_core.serve.limits import Limits
    from ser_core.serve.stream import StreamSession

    print(f"\n3. soak: {sessions} sessions in this process, {minutes:g} minutes of audio each", flush=True)
    classifier = EmotionClassifier.load()
    pool = sentences(160, seed=4)
    pcm = np.clip(np.round(pool * 32768), -32768, 32767).astype("<i2").tobytes()
    limits = Limits(stream_speed=1e9, max_stream_seconds=minutes * 60 + 60)
    streams = [StreamSession(classifier, limits) for _ in range(sessions)]
    rng = np.random.default_rng(5)
    step = 2 * int(0.05 * SR)
    offsets = [2 * int(rng.integers(0, len(pcm) // 2 - step)) for _ in streams]
    process = psutil.Process()
    tracemalloc.start()
    rounds = int(minutes * 60 / 0.05)
    for r in range(rounds + 1):
        if r % int(120 / 0.05) == 0:
            print(
                f"   {r * 0.05 / 60:4.0f} minutes: resident {process.memory_info().rss / 2**20:6.1f} MB, "
                f"traced {tracemalloc.get_traced_memory()[0] / 2**20:5.2f} MB",
                flush=True,
            )
        for i, session in enumerate(streams):
            o = offsets[i] if offsets[i] + step <= len(pcm) else 0
            session.audio(pcm[o : o + step])
            offsets[i] = o + step
    tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50, help="simultaneous real-time streams of the load run")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each stream of the load run")
    parser.add_argument("--sentences", type=int, default=24, help="sentences in the latency run's stream")
    parser.add_argument("--detector", default=None, help="voice-activity detector (default: the server's)")
    parser.add_argument(
        "--soak-minutes", type=float, default=0.0, help="minutes of audio a session in the soak (0: none)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["latency", "load"])
    args = parser.parse_args()
    port = free_port()
    print(f"before: {machine()}", flush=True)
    proc = start_server(port)
    url = f"http://{HOST}:{port}"
    ok = True
    try:
        if "latency" not in args.skip:
            ok &= latency(url, args.sentences, args.detector)
        if "load" not in args.skip:
            print(f"\n2. load: {args.streams} real-time streams of {args.minutes:g} minutes", flush=True)
            ok &= asyncio.run(load_run(url, proc.pid, args.streams, args.minutes * 60, args.detector))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.soak_minutes > 0:
        soak(args.soak_minutes)
    print(f"\nafter: {machine()}")
    measured = [k for k in TARGETS if k.split()[0] not in args.skip]
    if measured:
        print(
            f"targets ({', '.join(f'{k} <= {TARGETS[k]} s' for k in measured)}, 0 errors): {'met' if ok else 'NOT met'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
