"""Command line: ``python -m ser_core predict|timeline|serve|stream|export ...``: argument parsing and
printing; the work is the library's (:mod:`ser_core.batch` for many files).

Every problem with an input becomes one readable line (or a JSON error object) and the
run carries on; exit status 0 when every input was classified, 1 when any failed,
2 for a usage error. When the reader of the output goes away (``predict DIR | head -2``), the
command stops quietly; one writing a ``--report`` or ``--summary`` finishes it first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

__all__ = ["main", "build_parser", "HelpFormatter"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


NOT_ADAPTED_YET = (
    "--same-speaker: these recordings hold too little speech to learn the speaker's voice from "
    "({known}; it takes {clips} clips and {seconds:g} s); they are judged without adaptation."
)


def voice_for(args: argparse.Namespace, paths: list[str]):
    """The Voice that ``--voice FILE``, ``--reference FILE`` and ``--same-speaker`` ask for
    (``None`` without any): the saved voice, with the references and the recordings ``paths``
    added (``--same-speaker``). Raises :class:`ParameterError` (a usage error) for a voice file
    that cannot be used or references without usable speech.
    """
    from .errors import AudioError, ParameterError
    from .inference import EmotionClassifier

    same_speaker = getattr(args, "same_speaker", False)
    if not (args.voice or args.reference or same_speaker):
        return None
    clf = EmotionClassifier.load(args.artifacts)
    voice = read_voice(clf, args.voice) if args.voice else None
    if args.reference:
        try:
            voice = clf.calibrate(args.reference, voice=voice)
        except AudioError as e:
            raise ParameterError(f"--reference: {e}") from None
    if same_speaker:
        voice = clf.adapt(paths, voice=voice)
        say_if_not_adapted(voice)
    return voice


def read_voice(clf, path: str):
    """The voice saved in ``path`` (JSON), checked against ``clf``'s features."""
    from .errors import ParameterError
    from .inference import Voice

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParameterError(f"--voice: '{path}' cannot be read ({getattr(e, 'strerror', None) or e}).") from None
    try:
        voice = Voice.from_json(text)
        clf.classify_features(voice_probe(clf), voice)  # refuses a voice of another model
    except ParameterError as e:
        raise ParameterError(f"--voice: {e}") from None
    return voice


def voice_probe(clf):
    import numpy as np

    return np.zeros((1, clf.extractor.n_features), np.float32)


def say_if_not_adapted(voice) -> None:
    """A line on stderr when a same-speaker voice knows too little to adapt to."""
    from .inference.voice import MIN_SESSION_CLIPS, MIN_SESSION_SECONDS

    if voice.source is None:
        count = 0 if voice.session is None else voice.session.count
        known = f"{count} clips, {voice.session_seconds:.0f} s of speech"
        print(
            NOT_ADAPTED_YET.format(known=known, clips=MIN_SESSION_CLIPS, seconds=MIN_SESSION_SECONDS), file=sys.stderr
        )


def _format_row(result: dict, width: int) -> str:
    if "error" in result:
        return f"{result['path']:<{width}}  error: {result['error']}"
    return f"{result['path']:<{width}}  {result['emotion']:<10} {100 * result['confidence']:9.1f}%{_intensity(result)}"


def _intensity(verdict: dict) -> str:
    """A verdict's intensity for the text output: ``"  strong (81% chance of strong)"``, or nothing without one."""
    from .inference import Intensity

    intensity = verdict.get("intensity")
    return f"  {Intensity(intensity['level'], intensity['strength']).text}" if intensity else ""


def _emit(line: str) -> bool:
    """Print one line of output at once; ``False``, and no more output, once its reader has gone."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        _reader_left()
        return False
    return True


def _reader_left() -> None:
    """The reader of stdout has gone (``| head``): send the rest of the output nowhere, so that
    nothing more fails, not even Python's last flush at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse report/summary options that cannot work, before any file is analysed."""
    from .batch import reports
    from .errors import ParameterError

    if args.resume and not args.report:
        raise ParameterError("--resume continues a report; name it with --report FILE.")
    if args.report:
        reports.report_format(args.report)
    if args.summary:
        reports.summary_format(args.summary)


def cmd_predict(args: argparse.Namespace, timeline: tuple[float, float] | None = None) -> int:
    """``predict``, and ``timeline`` of several recordings (``timeline``: its window and hop)."""
    from . import bundle
    from .batch import BatchOptions, find_inputs, reports, run
    from .errors import ParameterError, SERError

    try:
        _check_outputs(args)
        options = BatchOptions(
            artifacts=args.artifacts,
            jobs=args.jobs,
            timeline=timeline,
            cluster=args.cluster,
            batch_size=args.batch_size,
        )
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    items = list(find_inputs(args.paths))
    report = None
    collected: list[dict] = []
    try:
        labels: tuple[str, ...] = ()
        if args.report or args.summary:
            labels = bundle.read(args.artifacts).labels
        if args.report:
            report = reports.open_report(args.report, labels, resume=args.resume)
            if args.resume:
                before = len(items)
                items = list(reports.iter_pending(items, report.done))
                print(
                    f"resuming: {before - len(items)} of {before} inputs are already in {args.report}", file=sys.stderr
                )
        local_speaker = args.same_speaker and not args.cluster  # learned in the run, each file heard once
        voice = voice_for(
            argparse.Namespace(**{**vars(args), "same_speaker": args.same_speaker and not local_speaker}),
            [path for path, error in items if error is None],
        )
        options = replace(options, voice=voice, same_speaker=local_speaker)
        results = run(items, options, on_voice=say_if_not_adapted)
        width = max((len(p) for p, _ in items), default=4)  # every row's path fits: the columns stay aligned
        failed = 0
        printing = args.json or _emit(f"{'file':<{width}}  {'emotion':<10} confidence  intensity")
        from tqdm import tqdm

        show = args.progress or sys.stderr.isatty()
        with (
            contextlib.closing(results),
            tqdm(total=len(items), unit="file", file=sys.stderr, disable=not show, dynamic_ncols=True) as bar,
        ):
            for result in results:
                failed += "error" in result
                row = json.dumps(result, ensure_ascii=False) if args.json else _format_row(result, width)
                printing = printing and _emit(row)
                if not printing and report is None and not args.summary:
                    break  # the reader has gone (| head) and nothing else was asked for
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
            rows = reports.read_report(args.report) if args.report else collected
            reports.write_summary(args.summary, rows, labels)
        except (SERError, OSError) as e:
            print(f"error: the summary could not be written ({e}).", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def _several_timelines(args: argparse.Namespace) -> argparse.Namespace:
    """``timeline`` of several recordings (or with a report) as ``predict`` runs them: one JSON
    line a recording, on a cluster."""
    from .batch.reports import report_format
    from .errors import ParameterError

    if not args.cluster:
        raise ParameterError(
            "timeline takes one FILE; for several, or --report, add --cluster (local:2 runs on this machine)."
        )
    if args.csv:
        raise ParameterError("With --cluster every recording is one JSON line; leave out --csv.")
    if args.report and report_format(args.report) != "jsonl":
        raise ParameterError(f"A timeline report holds JSON; name it '{Path(args.report).with_suffix('.jsonl')}'.")
    return argparse.Namespace(**{**vars(args), "paths": args.file, "json": True, "summary": None})


def cmd_timeline(args: argparse.Namespace) -> int:
    from .errors import ParameterError, SERError
    from .inference import EmotionClassifier, result_row

    many = args.cluster or len(args.file) > 1 or args.report or args.resume
    if args.segments and many:
        print("error: --segments takes one recording, without --cluster, --report or --resume.", file=sys.stderr)
        return EXIT_USAGE
    if many:  # many recordings: one JSON line each
        try:
            several = _several_timelines(args)
        except ParameterError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        window = args.window if args.window is not None else _clip_seconds(args)
        return cmd_predict(several, timeline=(window, args.hop))
    (file,) = args.file
    try:
        voice = voice_for(args, [file])
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        clf = EmotionClassifier.load(args.artifacts, jobs=args.jobs)
        if args.segments:
            timeline = clf.utterances(file, detector=args.detector, voice=voice)
        else:
            timeline = clf.timeline(file, window=args.window, hop=args.hop, voice=voice)
    except SERError as e:
        if args.json:
            print(json.dumps({"path": file, "error": str(e)}, ensure_ascii=False))
        else:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result_row(timeline, voice, file), ensure_ascii=False))
    elif args.csv:
        sys.stdout.write(timeline.to_csv())
    else:
        for w in timeline.windows:
            p = w.prediction
            verdict = f"{p.emotion:<10} {100 * p.confidence:5.1f}%{_intensity(p.to_dict())}" if p else "(no speech)"
            print(f"{w.start:8.2f}-{w.end:8.2f} s  {verdict}")
        try:
            print(f"overall: {timeline.overall().describe()}")
        except SERError as e:
            print(f"overall: {e}")
    return EXIT_OK


def _clip_seconds(args: argparse.Namespace) -> float:
    """The clip length of the bundle ``args.artifacts`` names: the default timeline window."""
    from . import audio, bundle
    from .errors import SERError

    try:
        return audio.Preprocessing.from_dict(bundle.read(args.artifacts).preprocessing).clip_seconds
    except (SERError, TypeError):
        return audio.CLIP_SECONDS  # the run reports an unusable bundle in its own words


def cmd_voice(args: argparse.Namespace) -> int:
    """``voice``: a speaker's voice learned from reference readings and recordings, saved as JSON."""
    import os
    import tempfile

    from .batch import find_inputs
    from .errors import AudioError, ParameterError, SERError
    from .inference import EmotionClassifier

    try:
        if not (args.paths or args.reference):
            raise ParameterError("Give recordings of the speaker, --reference readings, or both.")
        clf = EmotionClassifier.load(args.artifacts)
        voice = read_voice(clf, args.voice) if args.voice else clf.voice()
        if args.reference:
            try:
                voice = clf.calibrate(args.reference, voice=voice)
            except AudioError as e:
                raise ParameterError(f"--reference: {e}") from None
        found = list(find_inputs(args.paths))
        for path, error in found:
            if error is not None:
                print(f"{path}: {error}", file=sys.stderr)
        voice = clf.adapt([path for path, error in found if error is None], voice=voice)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    out = Path(args.out)
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.resolve().parent)
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(voice.to_json())
        os.replace(tmp, out)
    except OSError as e:
        print(f"error: cannot write {out} ({e.strerror}); check the folder and free space.", file=sys.stderr)
        return EXIT_FAILED
    print(f"{voice.describe()} Saved to {out}.")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .errors import SERError
    from .serve.limits import Limits
    from .serve.rest import serve

    try:
        limits = Limits(
            max_seconds=args.max_seconds,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            max_windows=args.max_windows,
            slots=args.slots,
            max_streams=args.max_streams,
            max_stream_seconds=args.max_stream_seconds,
        )
        serve(host=args.host, port=args.port, artifacts=args.artifacts, limits=limits)
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_stream(args: argparse.Namespace) -> int:
    """``stream URL FILE``: the file sent to a server's live stream, each event printed as it comes."""
    import asyncio

    from .errors import AudioError, ParameterError, SERError
    from .serve.client import StreamClient

    try:
        voice = voice_for(args, [args.file])
        client = StreamClient(args.url, detector=args.detector, voice=voice, fast=args.fast)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    status = sys.stderr.isatty() and not args.json

    async def run() -> int:
        code = EXIT_FAILED
        async for event in client.events(args.file):
            kind = event.get("type")
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            elif kind == "level":
                if status:
                    heard = "speech" if event["speech"] else "listening"
                    print(f"\r{event['t']:8.1f} s  {heard:<10}", end="", file=sys.stderr, flush=True)
            else:
                if status:
                    print("\r" + " " * 24 + "\r", end="", file=sys.stderr)
                print(_stream_line(event), flush=True)
            code = EXIT_OK if kind == "done" else EXIT_FAILED if kind == "error" else code
        return code

    try:
        return asyncio.run(run())
    except AudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED


def _stream_line(event: dict) -> str:
    """One event of a stream as a line of text."""
    kind = event.get("type")
    if kind == "ready":
        return f"streaming at {event['rate']} Hz, utterances found by {event['detector']}"
    if kind == "utterance":
        span = f"{event['start']:8.2f}-{event['end']:8.2f} s"
        if not event.get("speech"):
            return f"{span}  (too short to judge)"
        return f"{span}  {event['emotion']:<10} {100 * event['confidence']:5.1f}%{_intensity(event)}"
    if kind == "done":
        return f"done: {event['utterances']} utterances"
    if kind == "error":
        return f"error: {event['message']}"
    return json.dumps(event, ensure_ascii=False)


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import SERError
    from .training.export import export_model

    try:
        out = export_model(args.out, args.format, artifacts=args.artifacts)
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .inference.classifier import DEFAULT_HOP_SECONDS
    from .inference.utterances import DEFAULT_DETECTOR, DETECTORS

    parser = argparse.ArgumentParser(prog="python -m ser_core", description="Speech emotion recognition on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="emotion of audio files or folders", formatter_class=HelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    _artifacts_argument(p)
    p.add_argument(
        "--jobs", type=_at_least_one("processes"), default=os.cpu_count() or 1, help="processes for many files"
    )
    p.add_argument(
        "--report", metavar="FILE", help="also write every result to FILE (.csv or .jsonl), a line at a time"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the --report FILE: skip inputs already in it, append"
    )
    p.add_argument("--summary", metavar="FILE", help="write a summary chart (.html, self-contained, or .png)")
    p.add_argument("--progress", action="store_true", help="progress bar on stderr even when it is not a terminal")
    _cluster_arguments(p)
    _adaptation_arguments(p)
    p.set_defaults(func=cmd_predict)

    t = sub.add_parser("timeline", help="emotion over time for one recording", formatter_class=HelpFormatter)
    t.add_argument("file", metavar="FILE", nargs="+", help="a recording; several, or folders, with --cluster")
    fmt = t.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object")
    fmt.add_argument("--csv", action="store_true", help="CSV, one row a window")
    t.add_argument(
        "--window", type=float, default=None, help="window length in seconds (default: the model's clip, 3.5 s)"
    )
    t.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS, help="step between windows in seconds")
    t.add_argument(
        "--segments", action="store_true", help="one verdict per utterance (split on pauses) instead of windows"
    )
    t.add_argument(
        "--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="voice-activity detector of --segments"
    )
    _artifacts_argument(t)
    t.add_argument(
        "--jobs", type=_at_least_one("threads"), default=os.cpu_count() or 1, help="threads scoring the windows"
    )
    _cluster_arguments(t, timeline=True)
    _adaptation_arguments(t)
    t.set_defaults(func=cmd_timeline)

    from .serve.limits import LIMITS
    from .serve.rest import DEFAULT_HOST, DEFAULT_PORT

    v = sub.add_parser("serve", help="REST API (FastAPI, uvicorn)", formatter_class=HelpFormatter)
    v.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    v.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    v.add_argument(
        "--max-upload-mb", type=float, default=LIMITS.max_upload_bytes / 2**20, help="largest accepted upload, MiB"
    )
    v.add_argument("--max-seconds", type=float, default=LIMITS.max_seconds, help="longest recording analysed")
    v.add_argument("--max-windows", type=int, default=LIMITS.max_windows, help="most windows in one timeline")
    v.add_argument("--slots", type=int, default=LIMITS.slots, help="recordings analysed at once; more wait or get 503")
    v.add_argument("--max-streams", type=int, default=LIMITS.max_streams, help="live streams at once; more are refused")
    v.add_argument("--max-stream-seconds", type=float, default=LIMITS.max_stream_seconds, help="longest live stream")
    _artifacts_argument(v)
    v.set_defaults(func=cmd_serve)

    r = sub.add_parser(
        "stream",
        help="send a recording to a server's live stream and print each verdict as its utterance ends",
        formatter_class=HelpFormatter,
    )
    r.add_argument("url", metavar="URL", help="the server (http://127.0.0.1:8000) or its stream (ws://HOST/v1/stream)")
    r.add_argument("file", metavar="FILE", help="a recording, sent as 16 kHz 16-bit PCM")
    r.add_argument("--fast", action="store_true", help="send as fast as the server allows, not at the pace of speech")
    r.add_argument("--json", action="store_true", help="every event as the server sent it, one JSON object a line")
    r.add_argument(
        "--detector", choices=DETECTORS, default=None, help="voice-activity detector (default: the server's)"
    )
    _adaptation_arguments(r, same_speaker=False)
    _artifacts_argument(r, "model bundle that makes the --reference voice (the server's)")
    r.set_defaults(func=cmd_stream)

    o = sub.add_parser(
        "voice",
        help="learn a speaker's voice from recordings and save it (JSON) for --voice, the REST API and streams",
        formatter_class=HelpFormatter,
    )
    o.add_argument("paths", nargs="*", metavar="PATH", help="recordings of the speaker (files or folders), any emotion")
    o.add_argument(
        "--reference", action="append", metavar="FILE", help="a recording of their everyday voice, reading (repeat)"
    )
    o.add_argument("--voice", metavar="FILE.json", help="a saved voice to add to")
    o.add_argument("--out", required=True, metavar="FILE.json", help="where to save the voice (replaced atomically)")
    _artifacts_argument(o)
    o.set_defaults(func=cmd_voice)

    from .training.export import EXPORT_FORMATS

    e = sub.add_parser("export", help="the model for other runtimes", formatter_class=HelpFormatter)
    e.add_argument("--format", required=True, choices=sorted(EXPORT_FORMATS), help="model file format")
    e.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (replaced atomically if it is an earlier export)"
    )
    _artifacts_argument(e)
    e.set_defaults(func=cmd_export)
    return parser


def _address_argument(text: str) -> str:
    from .batch.cluster import parse_address
    from .errors import ParameterError

    try:
        parse_address(text)
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _at_least_one(unit: str):
    """An argparse type: a whole number of ``unit``, at least 1; anything else is a usage error."""

    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"'{text}' must be a whole number of {unit}, at least 1.")
        return int(text)

    return parse


_positive = _at_least_one("files")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where it says nothing (``None``; a flag, whose default
    is not being given) or the help already words it. Also for ``demo.py`` and ``train.py``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0 or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _artifacts_argument(
    parser: argparse.ArgumentParser, help: str = "model bundle folder (default: the shipped one)"
) -> None:
    parser.add_argument("--artifacts", default=None, help=help)


def _cluster_arguments(parser: argparse.ArgumentParser, *, timeline: bool = False) -> None:
    """The cluster options of ``predict`` (and, with ``timeline``, the report options ``timeline`` lacks)."""
    from .batch.cluster import MAX_BATCH_FILES, TASKS_PER_THREAD

    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        type=_address_argument,
        help="run on a Dask cluster: a scheduler (tcp://host:8786) or local:N worker processes on this machine",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=None,
        metavar="N",
        help=f"files per cluster task (default: up to {MAX_BATCH_FILES}, at least {TASKS_PER_THREAD} tasks a worker thread)",
    )
    if timeline:
        parser.add_argument(
            "--report", metavar="FILE", help="with --cluster: also write every timeline to FILE (.jsonl)"
        )
        parser.add_argument(
            "--resume", action="store_true", help="continue the --report FILE: skip inputs already in it"
        )
        parser.add_argument(
            "--progress", action="store_true", help="progress bar on stderr even when it is not a terminal"
        )


def _adaptation_arguments(parser: argparse.ArgumentParser, *, same_speaker: bool = True) -> None:
    parser.add_argument(
        "--voice",
        metavar="FILE.json",
        help="a speaker's voice saved by 'voice' (or the REST API): every PATH is this speaker, judged relative to it",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--reference",
        action="append",
        metavar="FILE",
        help="a recording of the speaker's everyday, unemotional voice (repeat for more): "
        "every PATH is this speaker, judged relative to that voice",
    )
    if same_speaker:
        group.add_argument(
            "--same-speaker",
            action="store_true",
            help="every PATH is one speaker: learn their voice from the recordings themselves (from 30 s of speech)",
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output has gone (| head): stop quietly
        _reader_left()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
