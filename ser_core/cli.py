"""Command line: ``python -m ser_core predict|timeline|serve|export ...``.

Every problem with an input becomes one readable line (or a JSON error object) and the
run carries on; exit status 0 when every input was classified, 1 when any failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HEAP_BLOCK_BYTES = 16 * 2**20  # buffers up to this size are reused from the heap (see _keep_freed_memory)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Files per worker task: each task costs the parent ~2 ms (measured: 0.2-0.4 s of its CPU for
# 1,000 files in tasks of 8, 0.06 s in tasks of 32), while the last tasks of a run leave a core
# idle; 32 balances the two for a thousand short files, and every worker gets at least 4 tasks.
MAX_TASK_FILES = 32
MIN_TASKS_PER_WORKER = 4
LAST_TASK_DIVISOR = 8  # the last jobs * MAX_TASK_FILES files go in tasks this many times smaller


def iter_inputs(paths: list[str]) -> Iterator[tuple[str, str | None]]:
    """``(path, error)`` for each file named or found in a folder, recursively and sorted.

    ``error`` is a sentence for an argument that is missing or a folder without audio.
    """
    from .audio import AUDIO_EXTENSIONS
    from .inputs import is_url, iter_url

    for raw in paths:
        if is_url(raw):
            yield from iter_url(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found = False
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                        found = True
                        yield os.path.join(root, name), None
            if not found:
                yield raw, f"The folder '{raw}' holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})."
        elif path.exists():
            yield raw, None
        else:
            yield raw, f"'{raw}' does not exist; check the path."


_worker_classifier = None
_worker_voice = None  # the Voice every file is judged against (--reference, --same-speaker), or None


def _worker_init(artifacts: str | None, jobs: int = 1, voice: str | None = None) -> None:
    global _worker_classifier, _worker_voice
    from .calibration import Voice
    from .classifier import EmotionClassifier

    _worker_classifier = EmotionClassifier.load(artifacts, jobs=jobs)
    _worker_voice = None if voice is None else Voice.from_json(voice)


def adaptation(args: argparse.Namespace, paths: list[str]):
    """The Voice that ``--reference FILE`` or ``--same-speaker`` asks for (``None`` without either).

    Raises :class:`ParameterError` (a usage error) for references without usable speech.
    """
    from .classifier import EmotionClassifier
    from .errors import AudioError, ParameterError

    if not args.reference and not args.same_speaker:
        return None
    clf = EmotionClassifier.load(args.artifacts)
    if args.reference:
        try:
            return clf.calibrate(args.reference)
        except AudioError as e:
            raise ParameterError(f"--reference: {e}") from None
    try:
        voice = clf.adapt(paths)
    except AudioError:
        voice = None  # no file has speech: each one says so on its own line
    if voice is None:
        print(
            "--same-speaker: these recordings are too short or mostly one emotion to show the speaker's "
            "everyday voice; they are judged without adaptation.",
            file=sys.stderr,
        )
    return voice


def _classify(item: tuple[str, str | None]) -> dict:
    from .inputs import analyse

    path, error = item
    if error is not None:
        return {"path": path, "error": error}
    return analyse(path, _verdict)


def _verdict(path: str) -> dict:
    from .calibration import adapted

    return {**_worker_classifier.predict(path, voice=_worker_voice).to_dict(), "adapted": adapted(_worker_voice)}


def _keep_freed_memory() -> None:
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


def _results(
    items: list[tuple[str, str | None]], artifacts: str | None, jobs: int, voice: str | None
) -> Iterator[dict]:
    """The verdicts of ``items``, in order. The classifier is loaded and the workers start on the
    files at once, while the caller prepares its output."""
    _keep_freed_memory()
    if jobs <= 1 or len(items) < 8:
        _worker_init(artifacts, max(jobs, 1), voice)  # few files: a long one's windows use the threads
        return map(_classify, items)
    import multiprocessing as mp

    _worker_init(artifacts, 1, voice)  # bad artifacts fail here: a failing pool initializer is respawned forever
    if sys.platform.startswith("linux"):  # forked workers inherit the classifier just loaded and verified
        import gc

        gc.freeze()  # the workers' collections leave the inherited objects (and their pages) alone
        pool = mp.get_context("fork").Pool(jobs)
    else:
        pool = mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(artifacts, 1, voice))
    chunk = max(1, min(MAX_TASK_FILES, len(items) // (MIN_TASKS_PER_WORKER * jobs)))
    split = max(0, len(items) - jobs * chunk)  # the last files go in small tasks: no core waits long at the end
    bulk = pool.imap(_classify, items[:split], chunksize=chunk)
    last = pool.imap(_classify, items[split:], chunksize=max(1, chunk // LAST_TASK_DIVISOR))  # queued after bulk
    return _closing(pool, itertools.chain(bulk, last))


def _closing(pool, results: Iterator[dict]) -> Iterator[dict]:
    """``results`` of ``pool``, which is stopped when they are all read (or the reader stops)."""
    with pool:
        yield from results


def _format_row(result: dict, width: int) -> str:
    if "error" in result:
        return f"{result['path']:<{width}}  error: {result['error']}"
    return f"{result['path']:<{width}}  {result['emotion']:<10} {100 * result['confidence']:5.1f}%{_intensity(result)}"


def _intensity(verdict: dict) -> str:
    """A verdict's intensity for the text output: ``"  strong (81%)"``, or nothing without one."""
    intensity = verdict.get("intensity")
    return f"  {intensity['level']} ({100 * intensity['strength']:.0f}%)" if intensity else ""


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse report/summary options that cannot work, before any file is analysed."""
    from . import batch
    from .errors import ParameterError

    if args.resume and not args.report:
        raise ParameterError("--resume continues a report; name it with --report FILE.")
    if args.report:
        batch.report_format(args.report)
    if args.summary:
        batch.summary_format(args.summary)


def cmd_predict(args: argparse.Namespace) -> int:
    from . import batch
    from .errors import ParameterError, SERError

    try:
        _check_outputs(args)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    items = list(iter_inputs(args.paths))
    report = None
    collected: list[dict] = []
    try:
        labels: tuple[str, ...] = ()
        if args.report or args.summary:
            from .artifacts import load_bundle

            labels = load_bundle(args.artifacts).labels
        if args.report:
            report = batch.open_report(args.report, labels, resume=args.resume)
            if args.resume:
                before = len(items)
                items = list(batch.iter_pending(items, report.done))
                print(
                    f"resuming: {before - len(items)} of {before} inputs are already in {args.report}", file=sys.stderr
                )
        voice = adaptation(args, [path for path, error in items if error is None])
        args.voice = None if voice is None else voice.to_json()
        if args.cluster:
            from . import cluster

            results = cluster.results(items, args)
        else:
            results = _results(items, args.artifacts, args.jobs, args.voice)
        width = min(60, max((len(p) for p, _ in items), default=4))
        failed = 0
        if not args.json:
            print(f"{'file':<{width}}  {'emotion':<10} confidence  intensity")
        from tqdm import tqdm

        show = args.progress or sys.stderr.isatty()
        with tqdm(total=len(items), unit="file", file=sys.stderr, disable=not show, dynamic_ncols=True) as bar:
            for result in results:
                failed += "error" in result
                print(json.dumps(result, ensure_ascii=False) if args.json else _format_row(result, width), flush=True)
                if report is not None:
                    report.write(result)
                elif args.summary:
                    collected.append(result)
                bar.update()
    except ParameterError as e:  # a report that cannot be continued
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SERError as e:  # artifacts unusable: nothing can be classified
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as e:  # the report or summary cannot be written
        print(
            f"error: cannot write {e.filename or 'the report'} ({e.strerror}); check the folder and free space.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        if report is not None:
            report.close()
    if args.summary:
        try:
            rows = batch.read_report(args.report) if args.report else collected
            batch.write_summary(args.summary, rows, labels)
        except (SERError, OSError) as e:
            print(f"error: the summary could not be written ({e}).", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def cmd_timeline(args: argparse.Namespace) -> int:
    from .calibration import adapted
    from .classifier import EmotionClassifier
    from .errors import ParameterError, SERError

    many = args.cluster or len(args.file) > 1 or args.report or args.resume
    if args.segments and many:
        print("error: --segments takes one recording, without --cluster, --report or --resume.", file=sys.stderr)
        return EXIT_USAGE
    if many:  # many recordings: one JSON line each
        from .cluster import timeline_args

        try:
            return cmd_predict(timeline_args(args))
        except ParameterError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
    (file,) = args.file
    try:
        voice = adaptation(args, [file])
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        clf = EmotionClassifier.load(args.artifacts, jobs=args.jobs)
        if args.segments:
            timeline = clf.segments(file, detector=args.detector, voice=voice)
        else:
            timeline = clf.timeline(file, window=args.window, hop=args.hop, voice=voice)
    except SERError as e:
        if args.json:
            print(json.dumps({"path": file, "error": str(e)}, ensure_ascii=False))
        else:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"path": file, **timeline.to_dict(), "adapted": adapted(voice)}, ensure_ascii=False))
    elif args.csv:
        sys.stdout.write(timeline.to_csv())
    else:
        for w in timeline.windows:
            p = w.prediction
            verdict = f"{p.emotion:<10} {100 * p.confidence:5.1f}%{_intensity(p.to_dict())}" if p else "(no speech)"
            print(f"{w.start:8.2f}-{w.end:8.2f} s  {verdict}")
        try:
            s = timeline.summary
            rows = "utterances" if args.segments else "windows with speech"
            print(
                f"overall: {s.emotion} ({100 * s.confidence:.1f}%){_intensity(s.to_dict())} "
                f"over {len(timeline.voiced)} {rows}"
            )
        except SERError as e:
            print(f"overall: {e}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .errors import SERError
    from .limits import Limits
    from .server import serve

    try:
        limits = Limits(
            max_seconds=args.max_seconds,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            max_windows=args.max_windows,
            slots=args.slots,
        )
        serve(host=args.host, port=args.port, artifacts=args.artifacts, limits=limits)
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import SERError
    from .export import export_model

    try:
        out = export_model(args.out, args.format, artifacts=args.artifacts)
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import cluster
    from .audio import CLIP_SECONDS
    from .classifier import DEFAULT_HOP_SECONDS
    from .segments import DEFAULT_DETECTOR, DETECTORS

    parser = argparse.ArgumentParser(prog="python -m ser_core", description="Speech emotion recognition on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "predict", help="emotion of audio files or folders", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    p.add_argument("--artifacts", default=None, help="model bundle folder (default: the shipped one)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for many files")
    p.add_argument(
        "--report", metavar="FILE", help="also write every result to FILE (.csv or .jsonl), a line at a time"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the --report FILE: skip inputs already in it, append"
    )
    p.add_argument("--summary", metavar="FILE", help="write a summary chart (.html, self-contained, or .png)")
    p.add_argument("--progress", action="store_true", help="progress bar on stderr even when it is not a terminal")
    cluster.add_arguments(p)
    _adaptation_arguments(p)
    p.set_defaults(func=cmd_predict)

    t = sub.add_parser(
        "timeline", help="emotion over time for one recording", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    t.add_argument("file", metavar="FILE", nargs="+", help="a recording; several, or folders, with --cluster")
    fmt = t.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object")
    fmt.add_argument("--csv", action="store_true", help="CSV, one row a window")
    t.add_argument("--window", type=float, default=CLIP_SECONDS, help="window length in seconds")
    t.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS, help="step between windows in seconds")
    t.add_argument(
        "--segments", action="store_true", help="one verdict per utterance (split on pauses) instead of windows"
    )
    t.add_argument(
        "--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="voice-activity detector of --segments"
    )
    t.add_argument("--artifacts", default=None, help="model bundle folder (default: the shipped one)")
    t.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="threads scoring the windows")
    cluster.add_arguments(t, timeline=True)
    _adaptation_arguments(t)
    t.set_defaults(func=cmd_timeline)

    from .limits import LIMITS
    from .server import DEFAULT_HOST, DEFAULT_PORT

    v = sub.add_parser(
        "serve", help="REST API (FastAPI, uvicorn)", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    v.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    v.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    v.add_argument(
        "--max-upload-mb", type=float, default=LIMITS.max_upload_bytes / 2**20, help="largest accepted upload, MiB"
    )
    v.add_argument("--max-seconds", type=float, default=LIMITS.max_seconds, help="longest recording analysed")
    v.add_argument("--max-windows", type=int, default=LIMITS.max_windows, help="most windows in one timeline")
    v.add_argument("--slots", type=int, default=LIMITS.slots, help="recordings analysed at once; more wait or get 503")
    v.add_argument("--artifacts", default=None, help="model bundle folder (default: the shipped one)")
    v.set_defaults(func=cmd_serve)

    from .export import EXPORT_FORMATS

    e = sub.add_parser(
        "export", help="the model for other runtimes", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    e.add_argument("--format", required=True, choices=sorted(EXPORT_FORMATS), help="model file format")
    e.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (replaced atomically if it is an earlier export)"
    )
    e.add_argument("--artifacts", default=None, help="model bundle folder (default: the shipped one)")
    e.set_defaults(func=cmd_export)
    return parser


def _adaptation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--reference",
        action="append",
        metavar="FILE",
        help="a recording of the speaker's everyday, unemotional voice (repeat for more): "
        "every PATH is this speaker, judged relative to that voice",
    )
    group.add_argument(
        "--same-speaker",
        action="store_true",
        help="every PATH is one speaker: adapt to the voice estimated from the recordings themselves",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
