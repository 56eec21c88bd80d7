"""Many recordings into rows: :func:`run` scores files, folders and URLs on local processes or on
a Dask cluster (:mod:`ser_core.batch.cluster`), as :class:`BatchOptions` say.

Every input ends with exactly one row, ``predict --json``'s object (:func:`~ser_core.inference.result_row`)
or ``{"path", "error"}`` with one sentence. Locally the rows come in the order of the inputs;
on a cluster in the order they finish. The command line's ``predict`` and ``timeline`` with
several files are this function and printing.

Locally, the classifier is loaded and verified once in this process and the worker processes
are forked from it (on Linux), so they start on the files at once; freed buffers stay mapped
(:func:`keep_freed_memory`) and each task holds enough files that the parent's share of the
work stays small.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from ..inference import EmotionClassifier, Voice
from ..inference.runtime import one_blas_thread
from .inputs import Input, find_inputs
from .job import BatchOptions, hear, judged, score

__all__ = ["run", "keep_freed_memory", "HEAP_BLOCK_BYTES"]

HEAP_BLOCK_BYTES = 16 * 2**20  # buffers up to this size are reused from the heap (see keep_freed_memory)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Files per worker task: each task costs the parent ~2 ms (measured: 0.2-0.4 s of its CPU for
# 1,000 files in tasks of 8, 0.06 s in tasks of 32), while the last tasks of a run leave a core
# idle; 32 balances the two for a thousand short files, and every worker gets at least 4 tasks.
MAX_TASK_FILES = 32
MIN_TASKS_PER_WORKER = 4
LAST_TASK_DIVISOR = 8  # the last jobs * MAX_TASK_FILES files go in tasks this many times smaller
FEW_FILES = 8  # fewer files are scored in this process, a long one's windows on its threads


def run(
    inputs: Iterable[str | os.PathLike[str] | Input],
    options: BatchOptions | None = None,
    *,
    on_voice: Callable[[Voice], None] | None = None,
) -> Iterator[dict]:
    """One row for each file of ``inputs``: paths, folders (searched recursively), URLs, or
    ``(path, error)`` pairs as :func:`~ser_core.batch.inputs.find_inputs` gives them.

    Locally the classifier is loaded before the first row is asked for (bad artifacts raise
    :class:`~ser_core.errors.ArtifactError` here, once), and the rows follow the inputs' order.
    With ``options.same_speaker`` every file is heard first (its features, on every process), the
    speaker's voice learned from all of them, then each judged relative to it; ``on_voice`` is
    called with that voice before the first row.
    """
    options = BatchOptions() if options is None else options
    items: list[Input] = []
    for item in inputs:
        items.extend([item] if isinstance(item, tuple) else find_inputs([item]))
    if options.cluster is not None:
        from .cluster import results

        return results(items, options)
    if options.same_speaker:
        return _same_speaker(items, options, on_voice)
    return _local(items, options, _classify)


# ---------------------------------------------------------------- local processes

_worker: tuple[EmotionClassifier, BatchOptions] | None = None  # what each worker process scores with


def _worker_init(options: BatchOptions, jobs: int) -> None:
    global _worker
    _worker = (EmotionClassifier.load(options.artifacts, jobs=jobs), options)


def _worker_start(options: BatchOptions | None = None) -> None:
    """In a worker process: BLAS on one thread for its whole life (and, spawned, its classifier)."""
    contextlib.ExitStack().enter_context(one_blas_thread())  # never closed: the process ends with the pool
    if options is not None:
        _worker_init(options, 1)


def _classify(item: Input) -> dict:
    path, error = item
    if error is not None:
        return {"path": path, "error": error}
    clf, options = _worker
    return score(clf, options, path)


def _hear(item: Input) -> dict:
    path, error = item
    return {"path": path, "error": error} if error is not None else hear(_worker[0], path)


def _same_speaker(
    items: list[Input], options: BatchOptions, on_voice: Callable[[Voice], None] | None
) -> Iterator[dict]:
    """Every file heard once, the voice learned from all of them, then every file judged with it."""
    heard = list(_local(items, options, _hear))
    clf = _worker[0]
    voice = clf.adapt([row["heard"] for row in heard if "heard" in row], voice=options.voice)
    if on_voice is not None:
        on_voice(voice)
    return _one_blas_thread(judged(clf, row, voice) for row in heard)


def keep_freed_memory() -> None:
    """Let this process (and the workers it forks) reuse freed memory instead of handing it back.

    Every file allocates buffers of a few hundred kB (decoded samples, clips, spectra); glibc maps
    such blocks fresh and unmaps them when freed, so each file paid ~200 page faults (~10% of its
    time). Blocks up to ``HEAP_BLOCK_BYTES`` now come from the heap, which keeps its freed top.
    Does nothing where the C library has no ``mallopt`` (not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES)
    mallopt(M_TRIM_THRESHOLD, 4 * HEAP_BLOCK_BYTES)


def _local(items: list[Input], options: BatchOptions, task: Callable[[Input], dict]) -> Iterator[dict]:
    """``task``'s rows of ``items`` in order. The classifier is loaded and the workers start on the
    files at once, while the caller prepares its output."""
    keep_freed_memory()
    if options.jobs <= 1 or len(items) < FEW_FILES:
        _worker_init(options, options.jobs)  # few files: a long one's windows use the threads
        return _one_blas_thread(map(task, items))
    import multiprocessing as mp

    _worker_init(options, 1)  # bad artifacts fail here: a failing pool initializer is respawned forever
    if sys.platform.startswith("linux"):  # forked workers inherit the classifier just loaded and verified
        import gc

        gc.freeze()  # the workers' collections leave the inherited objects (and their pages) alone
        pool = mp.get_context("fork").Pool(options.jobs, initializer=_worker_start)
    else:
        pool = mp.get_context("spawn").Pool(options.jobs, initializer=_worker_start, initargs=(options,))
    chunk = max(1, min(MAX_TASK_FILES, len(items) // (MIN_TASKS_PER_WORKER * options.jobs)))
    split = max(0, len(items) - options.jobs * chunk)  # the last files go in small tasks: no core waits long at the end
    bulk = pool.imap(task, items[:split], chunksize=chunk)
    last = pool.imap(task, items[split:], chunksize=max(1, chunk // LAST_TASK_DIVISOR))  # queued after bulk
    return _closing(pool, itertools.chain(bulk, last))


def _one_blas_thread(results: Iterator[dict]) -> Iterator[dict]:
    """``results``, BLAS on one thread while they are computed here."""
    with one_blas_thread():
        yield from results


def _closing(pool, results: Iterator[dict]) -> Iterator[dict]:
    """``results`` of ``pool``, which is stopped when they are all read (or the reader stops)."""
    with pool:
        yield from results
