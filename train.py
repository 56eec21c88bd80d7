"""Build the model bundle from a RAVDESS folder and evaluate it speaker-independently.

python train.py --data ../shared/data/ravdess-speech-16k   (replaces the shipped bundle, ser_core/artifacts)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from ser_core.bundle import SHIPPED_FOLDER
from ser_core.cli import HelpFormatter
from ser_core.emotions import EMOTIONS
from ser_core.errors import SERError
from ser_core.features import FEATURE_SETS
from ser_core.training.adapted import AdaptationConfig
from ser_core.training.build import train
from ser_core.training.corpora import DEGRADATIONS
from ser_core.training.fit import TrainConfig
from ser_core.training.intensity import IntensityConfig
from ser_core.training.networks import ARCHITECTURES
from ser_core.training.report import summary_table

DEFAULTS = TrainConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="RAVDESS folder (searched recursively for WAV/FLAC)")
    p.add_argument("--emodb", type=Path, default=None, help="EmoDB folder: a corpus the adapted model also learns from")
    p.add_argument("--nemo", type=Path, default=None, help="nEMO folder (with labels.csv): another such corpus")
    p.add_argument(
        "--no-calibrated",
        dest="adapted",
        action="store_false",
        help="leave out the adapted model (speaker adaptation: calibration and same-speaker)",
    )
    p.add_argument(
        "--no-intensity",
        dest="intensity",
        action="store_false",
        help="leave out the intensity model (normal or strong delivery, from RAVDESS's labels)",
    )
    p.add_argument("--out", type=Path, default=SHIPPED_FOLDER, help="bundle folder to write (replaced atomically)")
    p.add_argument("--emotions", default=",".join(EMOTIONS), help="comma-separated classes, in output order")
    p.add_argument(
        "--architecture",
        default=DEFAULTS.architecture,
        choices=sorted(ARCHITECTURES),
        help="'linear': logistic regression with temperature scaling; 'seed': the seed design's dense network",
    )
    p.add_argument(
        "--features",
        default=DEFAULTS.features,
        choices=FEATURE_SETS,
        help="'rich': 1,308 statistics; 'seed': the seed design's 105",
    )
    p.add_argument("--folds", type=int, default=DEFAULTS.folds, help="cross-validation folds of whole actors")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmented copies")
    p.add_argument(
        "--no-evaluate",
        dest="evaluate",
        action="store_false",
        help="skip cross-validation; train the shipped model only",
    )
    p.add_argument(
        "--no-seed",
        "--no-baseline",  # its name before the seed design was called that everywhere
        dest="compare_seed",
        action="store_false",
        help="skip evaluating the seed design beside it",
    )
    p.add_argument(
        "--degradations",
        default=",".join(DEFAULTS.degradations),
        help=f"degraded-audio conditions scored on the held-out folds ('' for none; from {', '.join(DEGRADATIONS)})",
    )
    p.add_argument("--random-seed", type=int, default=DEFAULTS.random_seed, help="seed of every random draw")
    p.add_argument("--jobs", type=int, default=DEFAULTS.jobs, help="processes for feature extraction")
    p.add_argument("--cache", default=".cache/features", help="feature cache folder ('' to disable)")
    return p.parse_args(argv)


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM stop the run: the handler raises KeyboardInterrupt, and the
    next announced stage raises it again should a library have swallowed the first, so an
    interrupted run never writes the bundle and never exits 0."""

    def __init__(self) -> None:
        self.received = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = True
        raise KeyboardInterrupt

    def on_stage(self, stage: str) -> None:
        if self.received:
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    interrupts = Interrupts()
    try:
        config = TrainConfig(
            architecture=args.architecture,
            features=args.features,
            compare_seed=args.compare_seed,
            degradations=tuple(d.strip() for d in args.degradations.split(",") if d.strip()),
            emotions=tuple(e.strip() for e in args.emotions.split(",") if e.strip()),
            folds=args.folds,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            augment=args.augment,
            random_seed=args.random_seed,
            jobs=args.jobs,
            evaluate=args.evaluate,
        )
        metrics = train(
            args.data,
            args.out,
            config,
            cache_dir=Path(args.cache) if args.cache else None,
            on_stage=interrupts.on_stage,
            emodb_dir=args.emodb,
            nemo_dir=args.nemo,
            adaptation=AdaptationConfig() if args.adapted else None,
            intensity=IntensityConfig() if args.intensity else None,
        )
    except SERError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the previous artifacts were left as they were", file=sys.stderr)
        return 130
    if interrupts.received:  # swallowed by a library after the last stage
        print("interrupted after the artifacts were written", file=sys.stderr)
        return 130
    print(summary_table(metrics))
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
