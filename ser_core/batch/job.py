"""One file into one row: :class:`BatchOptions` say how, :func:`score` does it. What every runner
of many files (local processes, :mod:`ser_core.batch.cluster`) does with each input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ParameterError, SERError
from ..inference import EmotionClassifier, Voice, result_row
from ..inference.classifier import check_timeline
from .inputs import analyse

__all__ = ["BatchOptions", "score", "hear", "judged"]


@dataclass(frozen=True)
class BatchOptions:
    """How a batch is scored.

    ``artifacts``: the bundle folder (default: the shipped one); ``jobs``: local processes;
    ``timeline``: ``(window, hop)`` in seconds for a timeline per file instead of one verdict;
    ``voice``: the speaker every file is judged against (:meth:`EmotionClassifier.calibrate`,
    :meth:`~EmotionClassifier.adapt`); ``same_speaker``: every file is of one speaker, whose voice
    is also learned from the files themselves (added to ``voice``), each file's features computed
    once (local processes only; predictions only); ``cluster``: a Dask scheduler address or
    ``local:N`` (:mod:`ser_core.batch.cluster`), with ``batch_size`` files per task.
    """

    artifacts: str | None = None
    jobs: int = os.cpu_count() or 1
    timeline: tuple[float, float] | None = None
    voice: Voice | None = None
    same_speaker: bool = False
    cluster: str | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ParameterError(f"jobs must be at least 1, not {self.jobs}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ParameterError(f"The batch size must be at least 1 file, not {self.batch_size}.")
        if self.timeline is not None:
            check_timeline(*self.timeline)
        if self.same_speaker and (self.timeline is not None or self.cluster is not None):
            raise ParameterError(
                "Learning the speaker's voice from the files (same_speaker) is done for predictions on this machine; "
                "learn it first (EmotionClassifier.adapt) and pass it as the voice."
            )


def score(clf: EmotionClassifier, options: BatchOptions, source: str, cwd: str | None = None) -> dict:
    """The row of one input (a path, or a URL fetched for the time of the analysis); never raises
    for a bad input. A relative path is taken from ``cwd`` when given (a cluster worker's client)."""

    def verdict(path: str) -> dict:
        path = os.path.join(cwd, path) if cwd is not None else path
        if options.timeline is None:
            result = clf.predict(path, voice=options.voice)
        else:
            window, hop = options.timeline
            result = clf.timeline(path, window=window, hop=hop, voice=options.voice)
        return result_row(result, options.voice)

    return analyse(source, verdict)


def hear(clf: EmotionClassifier, source: str) -> dict:
    """``{"path", "heard"}``: one input's features (:meth:`EmotionClassifier.hear`), or its error row."""
    return analyse(source, lambda path: {"heard": clf.hear(path)})


def judged(clf: EmotionClassifier, row: dict, voice: Voice | None) -> dict:
    """The row of an input :func:`hear` made into features, judged relative to ``voice``."""
    if "error" in row:
        return row
    try:
        return result_row(clf.judge(row["heard"], voice), voice, row["path"])
    except SERError as e:  # the recording had no speech to judge
        return {"path": row["path"], "error": str(e)}
