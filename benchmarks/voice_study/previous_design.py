"""The previous release's adapted models (the concatenated ``[x, x - r]`` design, one model for
references and one for sessions) in this release's protocol: RAVDESS 5-fold by actor with EmoDB and
nEMO always in training, then leave-one-corpus-out for each of the three; the "before" of
docs/ACCURACY.md's design comparison.

It imports the training code of a checkout of that release (commit abc4af4, the last one with
the concat design), so run it from a worktree of it:

    git worktree add ../previous abc4af4
    PYTHONPATH=../previous .venv/bin/python benchmarks/voice_study/previous_design.py OUT.json \\
        [--data ../shared/data] [--cache .cache/features]

Each split is written to OUT.json as it ends (about 1.5 hours on 2 cores). The design learned from
the original recordings only (no augmented copies); its folds, seeds and reference draws are that
release's own.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ser_core.features import build_extractor
from ser_core.training.adapted import AdaptationConfig, _evaluate_split
from ser_core.training.build import _corpus
from ser_core.training.corpora import extract_table, scan_emodb, scan_nemo, scan_ravdess
from ser_core.training.fit import TrainConfig, actor_folds

OTHERS = (("EmoDB", scan_emodb, "emodb-2s"), ("nEMO", scan_nemo, "nemo-16k"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config, extractor = TrainConfig(), build_extractor("rich")

    def table(files, augment):
        return extract_table(
            files, extractor=extractor, augment_config=config.augment_config if augment else None,
            random_seed=config.random_seed, cache_dir=args.cache, n_jobs=config.jobs,
        )  # fmt: skip

    ravdess = _corpus("RAVDESS", table(scan_ravdess(args.data / "ravdess-speech-16k", config.emotions), True), config)
    others = [
        _corpus(name, table(scan(args.data / folder, config.emotions), False), config) for name, scan, folder in OTHERS
    ]
    calibration, out = AdaptationConfig(), {}

    def save(key: str, train: list, test) -> None:
        out[key] = _evaluate_split(train, test, config, calibration, key)
        args.out.write_text(json.dumps(out, indent=1, default=float))

    actors = np.unique(ravdess.speakers).tolist()
    for i, test_actors in enumerate(actor_folds(actors, config.folds), 1):
        train_actors = [a for a in actors if a not in test_actors]
        save(f"ravdess_fold{i}", [ravdess.subset(train_actors), *others], ravdess.subset(test_actors))
    corpora = [ravdess, *others]
    for held in corpora:
        rest = [c for c in corpora if c is not held]
        known = np.isin(held.labels, np.unique(np.concatenate([c.labels for c in rest])))
        test = replace(held, features=held.features[known], labels=held.labels[known], speakers=held.speakers[known])
        save(f"without_{held.name}", rest, test)


if __name__ == "__main__":
    main()
