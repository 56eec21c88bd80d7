"""Attack and load on the REST API (issue 14), measured from outside as a client would.

    .venv/bin/python benchmarks/load_api.py [--repo DIR] [--clients 50] [--seconds 30] [--hostile 4]

Starts ``python -m ser_core serve`` from ``--repo`` (default: this checkout; pass another
checkout to measure an earlier release the same way) on 127.0.0.1 and a free port, then:

1. **hour**: posts a one-hour FLAC at a constant level (180 KB) to ``/v1/predict``: the time
   to the answer, and the server's CPU time spent on it in the 5 s after the answer.
2. **timeline memory**: posts the worst timelines a client can ask for (a 10-minute recording
   at the smallest hop the server accepts, and ten hours of silence at window 0.3 s, hop
   0.05 s) and reads the server's peak resident memory (VmHWM).
3. **leave**: a client asks for a 10-minute timeline and hangs up after 1 s: the server's CPU
   time in the 15 s after.
4. **load**: ``--clients`` concurrent clients post real 3 s RAVDESS clips to ``/v1/predict``
   for ``--seconds`` while ``--hostile`` other clients keep posting one-hour FLACs; every
   answer is checked. Prints answered, errors, p50/p95/max latency, throughput.
5. **SIGTERM** during a 10-minute timeline: the time until the server process is gone.

Every loop here is bounded by ``--seconds`` or a fixed count; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
RAVDESS = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
HOST = "127.0.0.1"
SR = 16_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(repo: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    python = repo / ".venv" / "bin" / "python"
    proc = subprocess.Popen(
        [str(python if python.exists() else sys.executable), "-m", "ser_core", "serve", "--port", str(port)],
        cwd=repo,
        env={**env, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):  # bounded: 60 s for the model to load
        try:
            if httpx.get(f"http://{HOST}:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system + sum(c.cpu_times().user + c.cpu_times().system for c in proc.children())


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(url: str, path: Path, timeout: float = 600, **params: float) -> tuple[float, httpx.Response | str]:
    started = time.perf_counter()
    try:
        with path.open("rb") as f:
            r = httpx.post(url, params=params, files={"file": (path.name, f)}, timeout=timeout)
        return time.perf_counter() - started, r
    except httpx.HTTPError as e:
        return time.perf_counter() - started, f"{type(e).__name__}"


def describe(answer: httpx.Response | str) -> str:
    if isinstance(answer, str):
        return answer
    body = answer.json()
    return f"{answer.status_code}: {body.get('error', 'ok')[:90]}"


def hostile_files(folder: Path) -> dict[str, Path]:
    files = {"hour": folder / "hour-level.flac", "silence": folder / "ten-hours-silence.flac"}
    sf.write(files["hour"], np.full(3600 * SR, 0.3, np.float32), SR)
    with sf.SoundFile(files["silence"], "w", SR, 1) as f:
        for _ in range(10):
            f.write(np.zeros(3600 * SR, np.float32))
    ten = folder / "ten-minutes.flac"
    clips = sorted(RAVDESS.glob("Actor_*/*.flac"))[:200]
    with sf.SoundFile(ten, "w", SR, 1) as f:
        written = 0
        for clip in clips:
            y, _ = sf.read(clip, dtype="float32")
            f.write(y)
            written += y.size
            if written >= 590 * SR:  # just under the 10-minute limit
                break
    files["ten"] = ten
    return files


async def load(url: str, clips: list[Path], hostile: Path, clients: int, n_hostile: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    refused = 0
    deadline = time.perf_counter() + seconds
    payloads = [(p.name, p.read_bytes()) for p in clips]
    hostile_payload = hostile.read_bytes()

    async def client(i: int, http: httpx.AsyncClient) -> None:
        k = i
        while time.perf_counter() < deadline:
            name, data = payloads[k % len(payloads)]
            k += clients
            started = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/predict", files={"file": (name, data)})
                if r.status_code != 200 or r.json().get("path") != name:
                    errors.append(f"{r.status_code} {r.text[:80]}")
                else:
                    latencies.append(time.perf_counter() - started)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)

    async def attacker(http: httpx.AsyncClient) -> None:
        nonlocal refused
        while time.perf_counter() < deadline:
            try:
                r = await http.post(f"{url}/v1/predict", files={"file": ("hour.flac", hostile_payload)})
                refused += r.status_code == 422
            except httpx.HTTPError:
                pass

    limits = httpx.Limits(max_connections=clients + n_hostile + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)), *(attacker(http) for _ in range(n_hostile)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "answered": len(latencies),
        "errors": len(errors),
        "first errors": errors[:3],
        "hostile refused": refused,
        "p50 ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p95 ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "max ms": 1000 * latencies[-1] if latencies else float("nan"),
        "requests/s": len(latencies) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose server is measured")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--hostile", type=int, default=4, help="clients posting one-hour files during the load")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["hour", "memory", "leave", "load"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ser-load-") as tmp:
        files = hostile_files(Path(tmp))
        clips = [p for p in sorted(RAVDESS.glob("Actor_*/*.flac")) if 3.0 <= sf.info(p).duration <= 4.0][:100]
        port = free_port()
        url = f"http://{HOST}:{port}"
        proc = start(args.repo.resolve(), port, dict(os.environ))
        server = psutil.Process(proc.pid)
        try:
            print(f"server: {args.repo}  (load average {os.getloadavg()[0]:.1f})")
            if "hour" not in args.skip:
                before = cpu_seconds(server)
                took, answer = post(f"{url}/v1/predict", files["hour"])
                after_answer = cpu_seconds(server)
                time.sleep(5)  # CPU spent after the answer: work that went on without a client
                print(f"hour FLAC on /v1/predict: answered in {took:.2f} s ({describe(answer)})")
                print(
                    f"  server CPU until the answer {after_answer - before:.2f} s, in the 5 s after it "
                    f"{cpu_seconds(server) - after_answer:.2f} s"
                )
            if "memory" not in args.skip:
                for name, params in (("ten", {"window": 0.3, "hop": 0.25}), ("silence", {"window": 0.3, "hop": 0.05})):
                    took, answer = post(f"{url}/v1/timeline", files[name], **params)
                    size = len(answer.content) / 2**20 if not isinstance(answer, str) else 0
                    print(
                        f"timeline {files[name].name} {params}: {took:.1f} s, {describe(answer)[:60]}, "
                        f"{size:.1f} MB of JSON; server peak RSS so far {peak_mb(proc.pid):.0f} MB"
                    )
            if "leave" not in args.skip:
                # a client that asks for a long timeline and hangs up after 1 s
                took, answer = post(f"{url}/v1/timeline", files["ten"], timeout=1.0, window=3.5, hop=0.25)
                left = cpu_seconds(server)
                time.sleep(15)
                print(
                    f"timeline of 10 minutes, client gone after {took:.1f} s ({describe(answer)}): "
                    f"server CPU in the 15 s after {cpu_seconds(server) - left:.2f} s"
                )
            if "load" not in args.skip:
                before = cpu_seconds(server)
                result = asyncio.run(load(url, clips, files["hour"], args.clients, args.hostile, args.seconds))
                result["server CPU ms per answer"] = 1000 * (cpu_seconds(server) - before) / max(1, result["answered"])
                print(f"load: {args.clients} clients x {args.seconds:g} s on /v1/predict with {args.hostile} hostile")
                for key, value in result.items():
                    print(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
                print(f"  server peak RSS {peak_mb(proc.pid):.0f} MB")
            # SIGTERM while a long timeline is being computed: how long until the process is gone
            thread = threading.Thread(
                target=post, args=(f"{url}/v1/timeline", files["ten"]), kwargs={"window": 3.5, "hop": 0.25}, daemon=True
            )
            thread.start()
            time.sleep(1.5)
            started = time.perf_counter()
            proc.terminate()
            try:
                proc.wait(120)
                print(f"SIGTERM during a 10-minute timeline: exited after {time.perf_counter() - started:.1f} s")
            except subprocess.TimeoutExpired:
                print("SIGTERM during a 10-minute timeline: still running after 120 s")
        finally:
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    main()
