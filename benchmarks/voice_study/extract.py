"""Extract (or load from the shared cache) the augmented rich feature tables of the three corpora.

PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.extract [--corpora ravdess emodb nemo]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ser_core.features import build_extractor
from ser_core.training.corpora import extract_table, scan_emodb, scan_ravdess
from ser_core.training.fit import TrainConfig

from .corpora import scan_nemo

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # the corpora beside the checkout
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "features"  # as train.py's default --cache
ROOTS = {"ravdess": DATA / "ravdess-speech-16k", "emodb": DATA / "emodb-2s", "nemo": DATA / "nemo-16k"}
SCANNERS = {"ravdess": scan_ravdess, "emodb": scan_emodb, "nemo": scan_nemo}


def load_tables(corpora=("ravdess", "emodb", "nemo"), *, augment: bool = True, cache_dir: Path = CACHE):
    """``{corpus: FeatureTable}`` with TrainConfig() defaults (7 classes, AugmentConfig(), seed 42, 2 jobs)."""
    config = TrainConfig()
    extractor = build_extractor(config.features)
    out = {}
    for name in corpora:
        files = SCANNERS[name](ROOTS[name], config.emotions)
        out[name] = extract_table(
            files,
            extractor=extractor,
            augment_config=config.augment_config if augment else None,
            random_seed=config.random_seed,
            cache_dir=cache_dir,
            n_jobs=config.jobs,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpora", nargs="+", default=["ravdess", "emodb", "nemo"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in args.corpora:
        t = time.time()
        table = load_tables((name,))[name]
        logging.info("%s: %d files, %d rows, %.0f s", name, len(table.files), len(table.features), time.time() - t)


if __name__ == "__main__":
    main()
