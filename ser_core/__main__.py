"""``python -m ser_core``: the command line (:mod:`ser_core.cli`)."""

from ser_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
