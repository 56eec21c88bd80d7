"""Start the speech emotion demo: ``python demo.py`` serves it on http://localhost:7860.

The page and its handlers live in :mod:`ser_core.serve.gradio_app`; this script only reads options,
loads the model once and launches the server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from ser_core.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        description="Speech emotion recognition demo (Gradio): record or upload speech, see its emotion.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", DEFAULT_HOST),
        help="address to listen on ($GRADIO_SERVER_NAME; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
        help="port to listen on ($GRADIO_SERVER_PORT)",
    )
    parser.add_argument("--share", action="store_true", help="also ask Gradio for a temporary public link")
    parser.add_argument(
        "--artifacts", default=None, help="model bundle folder (default: $SER_ARTIFACTS, else the shipped model)"
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ser_core.serve.gradio_app import cache_folder, sweep_cache

    # the demo's own cache folder, unless one is configured: what a killed run left there is swept now,
    # and all of it, the folder too, when the demo stops (Gradio's own clean-up skips files while clients stay connected)
    folder = None
    if "GRADIO_TEMP_DIR" not in os.environ:
        folder = cache_folder(args.port)
        swept = sweep_cache(folder)
        if swept:
            print(f"removed {swept} files left in {folder} by an earlier run", file=sys.stderr)
        os.environ["GRADIO_TEMP_DIR"] = str(folder)  # before Gradio is imported: it reads it then
    from ser_core import EmotionClassifier, SERError
    from ser_core.serve.gradio_app import build_app, launch_options

    try:
        clf = EmotionClassifier.load(args.artifacts)
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # SIGTERM stops the demo as Ctrl-C does, so Gradio deletes its cached uploads and CSVs
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        build_app(clf).launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())
    finally:
        if folder is not None:
            sweep_cache(folder)
            with contextlib.suppress(OSError):  # the folder too, unless something new is in it
                folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
