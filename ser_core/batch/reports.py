"""Batch reports for ``predict``: a CSV or JSON Lines file written a line at a time,
resumable after an interruption, and an HTML or PNG summary of the results.

A report row is the object ``predict --json`` prints: ``path`` and either ``emotion``,
``confidence`` and ``probabilities``, or ``error``. CSV spreads the probabilities over one
column per label. Every row is flushed as soon as it is written, so a killed run loses at
most the row being written; :func:`open_report` with ``resume=True`` drops such a torn
last row and appends after the rows that are complete.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..errors import ParameterError

__all__ = [
    "REPORT_FORMATS",
    "SUMMARY_FORMATS",
    "report_format",
    "read_report",
    "done_paths",
    "ReportWriter",
    "open_report",
    "write_summary",
    "path_key",
]

REPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SUMMARY_FORMATS = {".html": "html", ".htm": "html", ".png": "png"}
SUMMARY_PACKAGES = {"html": "plotly", "png": "matplotlib"}  # what draws each; not in every install
CONFIDENCE_BINS = 20  # histogram bins over [0, 1]


def report_format(path: str | os.PathLike[str]) -> str:
    """``'csv'`` or ``'jsonl'`` from the report's extension."""
    fmt = REPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError(f"The report '{path}' must end in .csv or .jsonl (JSON Lines); rename it.")
    return fmt


def path_key(path: str) -> str:
    """The key that identifies an input across runs: its absolute, normalised path."""
    return os.path.normpath(os.path.abspath(path))


def _complete_text(path: Path) -> tuple[str, int]:
    """The report's text up to its last newline, and that length in bytes (a torn last row is left out)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", errors="replace"), end


def _csv_row_to_result(row: dict[str, str], labels: Iterable[str]) -> dict:
    if row.get("error"):
        return {"path": row["path"], "error": row["error"]}
    return {
        "path": row["path"],
        "emotion": row["emotion"],
        "confidence": float(row["confidence"]),
        "probabilities": {k: float(row[k]) for k in labels},
    }


def read_report(path: str | os.PathLike[str]) -> list[dict]:
    """The complete rows of a report as ``predict --json`` objects; a torn last row is skipped."""
    path = Path(path)
    fmt = report_format(path)
    if not path.exists():
        return []
    text, _ = _complete_text(path)
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ParameterError(
                    f"Line {number} of the report '{path}' is not JSON; is it a report from predict?"
                ) from None
            if not isinstance(row, dict) or "path" not in row:
                raise ParameterError(
                    f"Line {number} of the report '{path}' has no 'path'; is it a report from predict?"
                )
            rows.append(row)
        return rows
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if not {"path", "emotion", "confidence", "error"} <= set(fields):
        raise ParameterError(
            f"The CSV report '{path}' lacks the path/emotion/confidence/error columns; is it a report from predict?"
        )
    labels = [f for f in fields if f not in ("path", "emotion", "confidence", "error")]
    try:
        return [_csv_row_to_result(row, labels) for row in reader]
    except (ValueError, TypeError, KeyError):
        raise ParameterError(f"The CSV report '{path}' has a malformed row; is it a report from predict?") from None


def done_paths(path: str | os.PathLike[str]) -> set[str]:
    """Keys (:func:`path_key`) of the inputs a report already holds a row for, errors included."""
    return {path_key(row["path"]) for row in read_report(path)}


class ReportWriter:
    """Writes result rows to an open report file, one flushed line each."""

    def __init__(self, stream: IO[str], fmt: str, labels: tuple[str, ...], *, header: bool) -> None:
        self._stream = stream
        self.fmt = fmt
        self.labels = labels
        self.done: set[str] = set()  # keys of the inputs already in the report (see open_report)
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None and header:
            self._csv.writerow(["path", "emotion", "confidence", *labels, "error"])
            stream.flush()

    def write(self, result: dict) -> None:
        if self._csv is None:
            self._stream.write(json.dumps(result, ensure_ascii=False) + "\n")
        elif "error" in result:
            self._csv.writerow([result["path"], "", "", *[""] * len(self.labels), result["error"]])
        else:
            probs = result["probabilities"]
            self._csv.writerow(
                [
                    result["path"],
                    result["emotion"],
                    f"{result['confidence']:.6f}",
                    *[f"{probs.get(k, 0.0):.6f}" for k in self.labels],
                    "",
                ]
            )
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(fd: int, path: Path) -> None:
    """Hold an exclusive advisory lock on the report, so two runs cannot interleave their rows."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ParameterError(
            f"The report '{path}' is being written by another run; wait for it or choose another name."
        ) from None


def open_report(path: str | os.PathLike[str], labels: tuple[str, ...], *, resume: bool) -> ReportWriter:
    """Open (and lock) a report for writing; ``.done`` holds the keys of the inputs it already has.

    Without ``resume`` an existing non-empty file is refused rather than overwritten. With
    ``resume`` the file is cut after its last complete row (a row torn by a kill) and appended to.
    """
    path = Path(path)
    fmt = report_format(path)
    exists = path.exists() and path.stat().st_size > 0
    if exists and not resume:
        raise ParameterError(
            f"The report '{path}' already exists; pass --resume to continue it or choose another name."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    _lock(fd, path)
    try:
        done: set[str] = set()
        if exists:
            done = {path_key(row["path"]) for row in read_report(path)}  # refuses a file that is not a report
            if fmt == "csv":
                with open(path, newline="", encoding="utf-8") as f:
                    header = next(csv.reader(f), [])
                if header[3:-1] != list(labels):
                    raise ParameterError(f"The report '{path}' was written for other labels; choose another name.")
            os.ftruncate(fd, _complete_text(path)[1])
        empty = os.fstat(fd).st_size == 0
        stream = open(fd, "a", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
    writer = ReportWriter(stream, fmt, labels, header=empty)
    writer.done = done
    return writer


# ---------------------------------------------------------------- summary


def _tally(results: Iterable[dict], labels: tuple[str, ...]) -> tuple[dict[str, int], list[float], int]:
    counts = {k: 0 for k in labels}
    confidences: list[float] = []
    errors = 0
    for r in results:
        if "error" in r:
            errors += 1
            continue
        counts[r["emotion"]] = counts.get(r["emotion"], 0) + 1
        confidences.append(float(r["confidence"]))
    return counts, confidences, errors


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary_html(counts: dict[str, int], confidences: list[float], errors: int) -> bytes:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Emotions", "Confidence of the winning emotion"))
    fig.add_trace(go.Bar(x=list(counts), y=list(counts.values()), name="files"), row=1, col=1)
    fig.add_trace(
        go.Histogram(x=confidences, xbins={"start": 0.0, "end": 1.0, "size": 1.0 / CONFIDENCE_BINS}, name="files"),
        row=1,
        col=2,
    )
    fig.update_xaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(
        title=f"{sum(counts.values())} files classified, {errors} failed", showlegend=False, template="plotly_white"
    )
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


def _summary_png(counts: dict[str, int], confidences: list[float], errors: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(list(counts), list(counts.values()))
    left.set_title("Emotions")
    left.set_ylabel("files")
    left.tick_params(axis="x", rotation=30)
    right.hist(confidences, bins=CONFIDENCE_BINS, range=(0.0, 1.0))
    right.set_title("Confidence of the winning emotion")
    right.set_xlim(0, 1)
    fig.suptitle(f"{sum(counts.values())} files classified, {errors} failed")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def summary_format(path: str | os.PathLike[str]) -> str:
    """``'html'`` or ``'png'`` from the summary's extension, once the package that draws it is
    found (before any file is analysed)."""
    fmt = SUMMARY_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError(f"The summary '{path}' must end in .html or .png; rename it.")
    package = SUMMARY_PACKAGES[fmt]
    try:
        importlib.import_module(package)
    except ImportError:
        raise ParameterError(
            f"A .{fmt} summary is drawn by {package}, which is not installed; pip install {package}."
        ) from None
    return fmt


def write_summary(path: str | os.PathLike[str], results: Iterable[dict], labels: tuple[str, ...]) -> Path:
    """Write the distribution of emotions and a confidence histogram as self-contained HTML or PNG."""
    path = Path(path)
    fmt = summary_format(path)
    counts, confidences, errors = _tally(results, labels)
    data = (_summary_html if fmt == "html" else _summary_png)(counts, confidences, errors)
    _atomic_write(path, data)
    return path


def iter_pending(items: Iterable[tuple[str, str | None]], done: set[str]) -> Iterator[tuple[str, str | None]]:
    """The inputs whose :func:`path_key` is not in ``done``."""
    return (item for item in items if path_key(item[0]) not in done)
