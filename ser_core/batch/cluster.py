"""Many recordings on a Dask cluster: :func:`~ser_core.batch.run` with ``BatchOptions(cluster=ADDRESS)``
(``predict --cluster ADDRESS`` and ``timeline --cluster ADDRESS``).

ADDRESS is a running scheduler (``tcp://host:8786``) or ``local:N``, a cluster of N worker
processes started here and listening on 127.0.0.1 only. The client lists the inputs, sends
them in batches (one task scores up to ``MAX_BATCH_FILES`` files, so scheduling stays a small
share of the work) and keeps only a few batches per worker thread in flight. Each worker
process loads and verifies the model bundle once. Rows stream back as their batch finishes,
so the caller can write its report a line at a time.

Every file ends with exactly one row: a batch is returned whole or not at all, a batch whose
worker died is run again elsewhere by the scheduler, and a batch that keeps ending its
workers is split into single files, so that the others around the file at fault get their
rows. A file that cannot be decoded is an error row from inside the task, never a retry.

Dask and fsspec come with ``pip install -r requirements-cluster.txt`` (the ``cluster`` extra);
they are imported here only when a cluster is used (see docs/CLUSTER.md).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArtifactError, ParameterError, SERError

if TYPE_CHECKING:  # pragma: no cover
    from .inputs import Input
    from .job import BatchOptions

__all__ = ["parse_address", "batch_size", "score_batch", "results", "MAX_BATCH_FILES", "TASKS_PER_THREAD"]

LOCAL_PREFIX = "local:"
MAX_LOCAL_WORKERS = 256
MAX_BATCH_FILES = 64  # files per task at most: ~0.3 s of work for short clips against ~1 ms of scheduling
TASKS_PER_THREAD = 4  # a small run is cut into this many batches per worker thread, so the load evens out
INFLIGHT_PER_THREAD = 3  # batches queued or running per worker thread; the rest wait on the client
CONNECT_TIMEOUT_S = 10
WORKER_WAIT_S = 60  # how long a scheduler may be without workers before the run gives up
CRASH_ENV = "SER_CLUSTER_CRASH_ONCE"  # for the recovery tests: see _crash_once


def parse_address(address: str) -> str | int:
    """A scheduler address as given, or the worker count N of ``local:N``."""
    if not address.startswith(LOCAL_PREFIX):
        return address
    count = address[len(LOCAL_PREFIX) :]
    if not count.isdigit() or not 1 <= int(count) <= MAX_LOCAL_WORKERS:
        raise ParameterError(
            f"'{address}' must be local:N with N from 1 to {MAX_LOCAL_WORKERS} worker processes, e.g. local:2."
        )
    return int(count)


def batch_size(n_files: int, threads: int) -> int:
    """Files per task: ``TASKS_PER_THREAD`` tasks for each worker thread, between 1 and ``MAX_BATCH_FILES``."""
    return max(1, min(MAX_BATCH_FILES, math.ceil(n_files / (max(threads, 1) * TASKS_PER_THREAD))))


# ---------------------------------------------------------------- on a worker


@functools.cache
def _classifier(artifacts: str | None):
    """The model of this worker process, loaded and verified on its first task."""
    from ..inference import EmotionClassifier

    return EmotionClassifier.load(artifacts, jobs=1)


def _crash_once() -> None:
    """With ``$SER_CLUSTER_CRASH_ONCE`` naming a file that does not exist yet, create it and end
    this worker process at once, mid-task: the tests' way to lose a worker deterministically."""
    flag = os.environ.get(CRASH_ENV)
    if not flag:
        return
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(70)


def score_batch(sources: list[str], *, options: BatchOptions, labels: tuple[str, ...], cwd: str = ".") -> list[dict]:
    """One row for each source (:func:`ser_core.batch.runner.score`), relative paths taken from the
    client's ``cwd``.

    Runs on a worker. Bad audio becomes an error row; only a model that cannot be loaded, or
    that has other labels than the client's, raises: then nothing can be scored.
    """
    from ..inference.runtime import one_blas_thread
    from .job import score

    _crash_once()
    clf = _classifier(options.artifacts)
    if tuple(clf.labels) != tuple(labels):
        raise ArtifactError(
            f"A worker's model has the labels {', '.join(clf.labels)}, this machine's {', '.join(labels)}; "
            "give every machine the same bundle (--artifacts on a shared filesystem)."
        )
    with one_blas_thread():
        return [score(clf, options, source, cwd) for source in sources]


# ---------------------------------------------------------------- on the client


def _silence_dask() -> None:
    """Only critical messages from Dask's loggers (each has its own level) from now on.

    The handlers Dask attached are raised too: a logger created later, with a level of its own,
    still passes its records up to them (a lost scheduler logs tracebacks from several)."""
    for name in [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for handler in logging.getLogger("distributed").handlers:
        handler.setLevel(logging.CRITICAL)


@contextlib.contextmanager
def connect(address: str | int) -> Iterator:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a new local cluster of N
    worker processes (one thread each, 127.0.0.1 only); closed, with the cluster, on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SERError(
            "--cluster needs Dask; install it with pip install -r requirements-cluster.txt in the repository."
        ) from None
    with contextlib.ExitStack() as stack:
        if isinstance(address, int):
            target = stack.enter_context(
                LocalCluster(
                    n_workers=address,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
        else:
            target = address
        try:
            client = stack.enter_context(Client(target, timeout=CONNECT_TIMEOUT_S))
        except (OSError, TimeoutError, ValueError) as e:
            raise SERError(
                f"Could not reach a Dask scheduler at {address} ({type(e).__name__}); "
                "start one with 'dask scheduler' or check the address."
            ) from None
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise SERError(
                f"The scheduler at {address} has had no workers for {WORKER_WAIT_S} s; start some with 'dask worker {address}'."
            ) from None
        # from here on every failure reaches the caller through its futures and is reported in one
        # sentence; a scheduler that goes away would otherwise add Dask's tracebacks to it (its
        # background threads log them as soon as the connection drops, before any future fails)
        _silence_dask()
        yield client


def stream(client, batches: Iterable[list[str]], options: dict, inflight: int) -> Iterator[dict]:
    """Rows of every batch (:func:`score_batch` with ``options``), as the batches finish; at most
    ``inflight`` batches submitted at once.

    A batch lost with more workers than the scheduler allows (``KilledWorker``; the default is
    3) is split into single files; a single file lost so gets an error row.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    waiting = iter(batches)
    futures: dict = {}
    finished = as_completed()

    def submit(batch: list[str]) -> None:
        future = client.submit(score_batch, batch, **options, pure=False, retries=0)
        futures[future] = batch
        finished.add(future)

    for batch in itertools.islice(waiting, inflight):
        submit(batch)
    for future in finished:
        batch = futures.pop(future)
        try:
            rows = future.result()
        except KilledWorker:
            rows = []
            if len(batch) > 1:  # find the file at fault: the others get their rows
                for source in batch:
                    submit([source])
            else:
                rows = [
                    {
                        "path": batch[0],
                        "error": "Every worker analysing this file was lost; analyse it alone to check, "
                        "and please report it with the file.",
                    }
                ]
        except SERError:
            raise
        except (CancelledError, OSError):  # OSError: distributed's CommClosedError
            raise SERError(
                "The connection to the scheduler was lost before the run ended; "
                "start it again and continue with --report FILE --resume."
            ) from None
        except Exception as e:  # the task could not run: e.g. a worker without ser_core
            raise SERError(
                f"The cluster could not run the analysis ({type(e).__name__}: {e}); install this ser-core and "
                "requirements-cluster.txt on every worker, and continue with --report FILE --resume."
            ) from None
        yield from rows
        for more in itertools.islice(waiting, 1):
            submit(more)


def results(items: Iterable[Input], options: BatchOptions) -> Iterator[dict]:
    """One row per input, scored on the cluster ``options.cluster``, in the order they finish.

    Inputs that already carry an error (a missing path) are answered at once, without the cluster.
    """
    from .. import bundle

    address = parse_address(options.cluster)
    labels = bundle.read(options.artifacts).labels  # a bad bundle fails here, once, before any worker starts
    artifacts = str(Path(options.artifacts).resolve()) if options.artifacts else None
    sources = []
    for source, error in items:
        if error is None:
            sources.append(source)
        else:
            yield {"path": source, "error": error}
    if not sources:
        return
    with connect(address) as client:
        threads = sum(client.nthreads().values())
        size = options.batch_size or batch_size(len(sources), threads)
        batches = (sources[i : i + size] for i in range(0, len(sources), size))
        task = {"options": replace(options, artifacts=artifacts, cluster=None), "labels": labels, "cwd": os.getcwd()}
        yield from stream(client, batches, task, max(2, threads * INFLIGHT_PER_THREAD))
