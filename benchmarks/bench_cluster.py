"""Cluster benchmark (issue 13): local ``--jobs 2`` against ``--cluster local:2``, task overhead, batch sizes.

    .venv/bin/python benchmarks/bench_cluster.py [--clips 1000] [--repeat 3] [--tasks 2000]

On the folder of short clips that ``bench.py`` generates (2-3 s at 44.1 kHz), it times:

- the command line, start-up included: ``predict --json --jobs 2`` and ``--cluster local:2``;
- a warm ``local:2`` cluster in this process (start-up apart) for several files per task;
- the scheduler's cost per task: empty tasks on a scheduler and workers started as separate
  commands, as on several machines, as many in flight as the command keeps
  (``INFLIGHT_PER_THREAD`` a thread) and all at once, with the CPU of the client, the
  scheduler and the workers apart;
- the CPU one clip costs on one warm thread.

Besides wall time it counts the CPU that every process of a run spent (the command and all
its workers, or this process with its scheduler and the worker processes), because this
machine is shared: wall time says what other programs left over, CPU per file less the CPU
of one clip on a warm thread is the overhead per file whatever the load. Medians of
``--repeat`` runs. Temporary audio goes to a temporary folder. Prints tables.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import logging
import operator
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import PYTHON, RATE_IN, REPO, speech_like, write_wav

from ser_core import EmotionClassifier
from ser_core.batch import BatchOptions, cluster

CORES = 2  # local:2 and --jobs 2


def make_clips(folder: Path, n_clips: int) -> list[Path]:
    """``n_clips`` speech-like WAV files of 2-3 s at 44.1 kHz, as bench.py's folder row."""
    import numpy as np

    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n_clips):
        write_wav(folder / f"clip{i:04d}.wav", speech_like(rng.uniform(2.0, 3.0), RATE_IN, seed=10 + i), RATE_IN)
    return sorted(folder.iterdir())


def children_cpu() -> float:
    """CPU seconds of the finished child processes and all their reaped descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(fn, repeat: int, cpu) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (by ``cpu()`` before and after) of ``fn()``."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu0, start = cpu(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(cpu() - cpu0)
    return statistics.median(walls), statistics.median(cpus)


def cli_run(folder: Path, options: list[str], n_clips: int) -> None:
    out = subprocess.run(
        [PYTHON, "-m", "ser_core", "predict", "--json", *options, str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == n_clips and '"error"' not in out.stdout, out.stderr[-500:]


def cpu_ms_per_clip(files: list[Path]) -> float:
    """Mean CPU of one clip on one warm thread (decode, features, model), in ms, over 200 clips."""
    clf = EmotionClassifier.load(jobs=1)
    sample = files[:200]
    clf.predict(sample[0])
    start = time.process_time()
    for f in sample:
        clf.predict(f)
    return 1e3 * (time.process_time() - start) / len(sample)


def run_batches(client, sources: list[str], size: int) -> None:
    batches = (sources[i : i + size] for i in range(0, len(sources), size))
    options = {"options": BatchOptions(), "labels": EmotionClassifier.load().labels, "cwd": str(REPO)}
    rows = list(cluster.stream(client, batches, options, CORES * cluster.INFLIGHT_PER_THREAD))
    assert len(rows) == len(sources) and not any("error" in r for r in rows)


def empty_tasks(client, n_tasks: int, inflight: int | None) -> None:
    """``n_tasks`` empty tasks, ``inflight`` submitted at a time (None: all at once)."""
    from distributed import as_completed

    if inflight is None:
        for future in as_completed(client.map(operator.add, range(n_tasks), range(n_tasks), pure=False)):
            future.result()
    else:
        numbers = iter(range(n_tasks))
        finished = as_completed(
            [client.submit(operator.add, i, 1, pure=False) for i in itertools.islice(numbers, inflight)]
        )
        for future in finished:
            future.result()
            for i in itertools.islice(numbers, 1):
                finished.add(client.submit(operator.add, i, 1, pure=False))


def cpu_of(*processes) -> Callable[[], float]:
    """A function giving the CPU seconds that ``processes`` (psutil) have spent so far."""
    return lambda: sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def worker_processes(client) -> list:
    import psutil

    return [psutil.Process(pid) for pid in client.run(os.getpid).values()]


@contextlib.contextmanager
def separate_cluster(tmp: Path) -> Iterator[tuple]:
    """``dask scheduler`` and ``dask worker`` (2 processes, 1 thread each) on 127.0.0.1, started as on
    several machines; yields a client and the scheduler's process (psutil)."""
    import psutil
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    address = tmp / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(address)],
        **quiet,
    )
    workers = subprocess.Popen(
        [dask, "worker", "--scheduler-file", str(address), "--nworkers", str(CORES), "--nthreads", "1"]
        + ["--host", "127.0.0.1", "--no-dashboard"],
        **quiet,
    )
    try:
        deadline = time.monotonic() + 60
        while not address.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with Client(scheduler_file=str(address), timeout=60) as client:
            client.wait_for_workers(CORES, timeout=60)
            yield client, psutil.Process(scheduler.pid)
    finally:
        for process in (workers, scheduler):
            process.terminate()
            process.wait(timeout=60)


def row(name: str, wall: float, cpu: float, n_clips: int, cpu_ms: float) -> None:
    per_file = 1e3 * cpu / n_clips
    print(f"| {name} | {wall:.2f} s | {n_clips / wall:.0f} clips/s | {per_file:.2f} ms | {per_file - cpu_ms:+.2f} ms |")


def split_row(name: str, client, scheduler, run: Callable[[], None], n: int, repeat: int) -> None:
    """Wall time and CPU of ``run()`` per unit (``n`` units), in this process, the scheduler and the workers."""
    import psutil

    parts = [cpu_of(psutil.Process()), cpu_of(scheduler), cpu_of(*worker_processes(client))]
    walls, cpus = [], []
    for _ in range(repeat):
        before, start = [f() for f in parts], time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append([f() - b for f, b in zip(parts, before, strict=True)])
    wall = statistics.median(walls)
    ms = [1e3 * statistics.median(c[i] for c in cpus) / n for i in range(3)]
    print(f"| {name} | {1e3 * wall / n:.2f} ms | {n / wall:.0f}/s | {ms[0]:.2f} ms | {ms[1]:.2f} ms | {ms[2]:.2f} ms |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=1000, help="clips in the folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median)")
    parser.add_argument("--tasks", type=int, default=2000, help="empty tasks for the scheduler overhead")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ser-bench-cluster-"))
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    try:
        print(f"writing {args.clips} clips...", file=sys.stderr, flush=True)
        files = make_clips(tmp / "clips", args.clips)
        sources = [str(f) for f in files]
        cpu_ms = cpu_ms_per_clip(files)
        print(f"\none clip on one warm thread: {cpu_ms:.2f} ms CPU\n")
        print("| run | wall | throughput | CPU per file, all processes | overhead per file |")
        print("| --- | --- | --- | --- | --- |")
        for name, options in [
            ("CLI `--jobs 2`", ["--jobs", "2"]),
            ("CLI `--cluster local:2`", ["--cluster", "local:2"]),
        ]:
            run = functools.partial(cli_run, tmp / "clips", options, args.clips)
            row(name + ", start-up included", *measured(run, args.repeat, children_cpu), args.clips, cpu_ms)

        from distributed import Client, LocalCluster

        start = time.perf_counter()
        local = LocalCluster(
            n_workers=CORES, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR
        )
        with local, Client(local) as client:
            print(f"\nstarting local:2 took {time.perf_counter() - start:.2f} s\n")
            import psutil

            cpu = cpu_of(psutil.Process(), *worker_processes(client))
            run_batches(client, sources[:200], 8)  # warm: each worker loads the model
            print("| run | wall | throughput | CPU per file, all processes | overhead per file |")
            print("| --- | --- | --- | --- | --- |")
            for size in (1, 4, 16, cluster.batch_size(len(sources), CORES), 256):
                run = functools.partial(run_batches, client, sources, size)
                row(f"warm `local:2`, {size} files a task", *measured(run, args.repeat, cpu), args.clips, cpu_ms)

        print("\nscheduler and workers as separate commands (`dask scheduler`, `dask worker`):\n")
        print("| unit | wall a unit | rate | CPU a unit: client | scheduler | workers |")
        print("| --- | --- | --- | --- | --- | --- |")
        with separate_cluster(tmp) as (client, scheduler):
            run_batches(client, sources[:200], 8)
            inflight = CORES * cluster.INFLIGHT_PER_THREAD
            for label, limit in [(f"{inflight} in flight", inflight), ("all submitted at once", None)]:
                run = functools.partial(empty_tasks, client, args.tasks, limit)
                split_row(f"empty task, {label}", client, scheduler, run, args.tasks, args.repeat)
            size = cluster.batch_size(len(sources), CORES)
            run = functools.partial(run_batches, client, sources, size)
            split_row(f"file, {size} files a task", client, scheduler, run, len(sources), args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
