"""A fully nested estimate of the intensity model's UAR (normal vs strong): the design and C are
chosen inside each outer actor fold, on the outer-training actors alone.

Outer folds: those of the model card (:func:`ser_core.training.fit.actor_folds`, 5 by actor). In each,
the candidate designs and C values are scored by UAR on inner actor folds of the outer-training
actors; the winner is fitted on all outer-training actors and scores the outer test actors'
original recordings. Emotion probabilities that weigh the heads never come from a model that saw
the actors they weigh: for the outer test actors, the emotion model's cross-validation (as the
model card); for inner validation actors, the shipped emotion model (:func:`ser_core.training.fit.fit`,
its own C and temperature chosen on inner-inner folds) fitted on the inner-training actors.

Designs (all class-balanced logistic regressions on standardised features):
  single       one head for every emotion
  per_emotion  one head per emotion, weighted by the predicted emotion (the shipped design)
  joint        one 12-class model over (emotion, level); strength = P(any strong class)
  average      the mean of per_emotion and single

    PYTHONPATH=. .venv/bin/python benchmarks/intensity_nested.py --data ../shared/data/ravdess-speech-16k
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from ser_core.features import build_extractor
from ser_core.inference.intensity import LEVELS, NO_INTENSITY
from ser_core.training.corpora import FeatureTable, extract_table, scan_ravdess
from ser_core.training.fit import (
    TrainConfig,
    actor_folds,
    cross_validate,
    evaluate_predictions,
    fit_rows,
    standardiser,
)
from ser_core.training.intensity import IntensityConfig, evaluate_intensity, intensity_labels

DESIGNS = ("single", "per_emotion", "joint", "average")
SHIPPED = "per_emotion"


def _logistic(z: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z, y)


def design_strengths(
    z_train: np.ndarray, strong: np.ndarray, emotion: np.ndarray, z_test: np.ndarray, share: np.ndarray, c: float
) -> dict[str, np.ndarray]:
    """Every design's probability of strong delivery for ``z_test``, fitted on ``z_train`` with
    ``strong`` (0/1) and ``emotion`` (0..k-1); ``share`` ``(test, k)`` is the emotion model's
    probability of each of the k emotions, normalised over them."""
    k = share.shape[1]
    single = _logistic(z_train, strong, c).predict_proba(z_test)[:, 1]
    heads = np.zeros((len(z_test), k))
    for e in range(k):
        rows = emotion == e
        heads[:, e] = _logistic(z_train[rows], strong[rows], c).predict_proba(z_test)[:, 1]
    per_emotion = (share * heads).sum(axis=1)
    joint_model = _logistic(z_train, 2 * emotion + strong, c)
    joint = joint_model.predict_proba(z_test)[:, joint_model.classes_ % 2 == 1].sum(axis=1)
    return {"single": single, "per_emotion": per_emotion, "joint": joint, "average": (single + per_emotion) / 2}


def uar(strong: np.ndarray, strength: np.ndarray) -> float:
    return evaluate_predictions(strong, np.c_[1 - strength, strength], LEVELS)["uar"]


def emotion_share(probabilities: np.ndarray, config: TrainConfig, emotions: tuple[str, ...]) -> np.ndarray:
    """The emotion model's probabilities of ``emotions``, normalised over them (as serving does)."""
    share = probabilities[:, [config.emotions.index(e) for e in emotions]]
    return share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)


def emotion_probabilities(table: FeatureTable, train: np.ndarray, test: np.ndarray, config: TrainConfig, desc: str):
    """The shipped emotion model fitted on rows ``train`` of ``table``; its probabilities for rows ``test``."""
    return fit_rows(table, train, config, desc=desc).probabilities(table.features[test])


def nested_fold(
    table: FeatureTable,
    outer_train: np.ndarray,
    test: np.ndarray,
    test_probs: np.ndarray,
    config: TrainConfig,
    grid: tuple[float, ...],
    inner_folds: int,
    desc: str,
) -> dict:
    """One outer fold: every (design, C) scored on inner actor folds of ``outer_train`` rows;
    the best fitted on all of them and scored on ``test`` rows (emotion model: ``test_probs``)."""
    labels, actors = intensity_labels(table), table.actors()
    emotions = tuple(e for e in config.emotions if e not in NO_INTENSITY)
    names = np.array([table.files[i].emotion for i in table.file_index])
    emotion = np.array([emotions.index(n) if n in emotions else -1 for n in names])
    rows = outer_train[labels[outer_train] >= 0]  # the intensity model's training rows
    mean, scale = standardiser(table.features[rows])
    z = (table.features - mean) / scale
    scores = {(d, c): [] for d in DESIGNS for c in grid}
    for j, held_actors in enumerate(actor_folds(actors[outer_train].tolist(), inner_folds)):
        held = np.isin(actors, held_actors)
        valid = rows[held[rows] & ~table.augmented[rows]]
        fit_rows = rows[~held[rows]]
        probs = emotion_probabilities(
            table, outer_train[~held[outer_train]], valid, config, f"{desc}: inner emotion model {j + 1}"
        )
        share = emotion_share(probs, config, emotions)
        for c in grid:
            for d, s in design_strengths(z[fit_rows], labels[fit_rows], emotion[fit_rows], z[valid], share, c).items():
                scores[d, c].append(uar(labels[valid], s))
    inner = {key: float(np.mean(v)) for key, v in scores.items()}
    share = emotion_share(test_probs, config, emotions)
    outer = {}
    for c in grid:  # every design's outer UAR at every C, so the chosen one and each design's own best can be read
        for d, s in design_strengths(z[rows], labels[rows], emotion[rows], z[test], share, c).items():
            outer[d, c] = uar(labels[test], s)
    design, c = max(inner, key=inner.get)
    own = {d: max(grid, key=lambda c, d=d: inner[d, c]) for d in DESIGNS}
    return {
        "design": design,
        "c": c,
        "inner_uar": inner[design, c],
        "uar": outer[design, c],
        "design_uar": {d: outer[d, own[d]] for d in DESIGNS},  # each design with its C chosen on inner folds
        "design_c": own,
        "inner": inner,
    }


def load_table(data: Path, config: TrainConfig, cache: Path | None) -> FeatureTable:
    files = scan_ravdess(data, config.emotions)
    return extract_table(
        files,
        extractor=build_extractor(config.features),
        augment_config=config.augment_config,
        random_seed=config.random_seed,
        cache_dir=cache,
        n_jobs=config.jobs,
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="RAVDESS folder")
    p.add_argument("--cache", default=".cache/features", help="feature cache folder, as train.py's ('' to disable)")
    p.add_argument("--inner-folds", type=int, default=IntensityConfig().inner_folds, help="inner actor folds")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.perf_counter()
    config = TrainConfig()
    grid = IntensityConfig().c_grid
    table = load_table(args.data, config, Path(args.cache) if args.cache else None)
    actors = table.actors()
    held_out = np.full((len(table.features), len(config.emotions)), np.nan, np.float32)

    def keep(rows: np.ndarray, probs: np.ndarray) -> None:
        held_out[rows] = probs

    emotion_cv = cross_validate(table, config, on_scored=keep)
    print(f"emotion model, 5-fold by actor: UAR {emotion_cv['mean']['uar']:.3f} (the model card's protocol)")
    shipped = evaluate_intensity(table, held_out, config, IntensityConfig())
    labels = intensity_labels(table)
    results = []
    for i, test_actors in enumerate(actor_folds(actors.tolist(), config.folds)):
        out = np.isin(actors, test_actors)
        outer_train = np.flatnonzero(~out & (config.augment | ~table.augmented))
        test = np.flatnonzero(out & ~table.augmented & (labels >= 0))
        desc = f"outer fold {i + 1}/{config.folds}"
        r = nested_fold(table, outer_train, test, held_out[test], config, grid, args.inner_folds, desc)
        results.append(r)
        print(
            f"{desc} (actors {test_actors}): chose {r['design']}, C={r['c']} (inner UAR {r['inner_uar']:.3f}); "
            f"outer UAR {r['uar']:.3f}; shipped design fixed: {shipped['folds'][i]['uar']:.3f} (C={shipped['folds'][i]['c']})"
        )
        print("    each design, C chosen on inner folds: " + ", ".join(
            f"{d} {r['design_uar'][d]:.3f} (C={r['design_c'][d]})" for d in DESIGNS
        ))  # fmt: skip
    nested = [r["uar"] for r in results]
    fixed = [f["uar"] for f in shipped["folds"]]
    print(f"\nnested (design and C chosen per outer fold): UAR {np.mean(nested):.3f} +/- {np.std(nested):.3f}")
    print(
        f"shipped design fixed (evaluate_intensity, the model card's protocol): UAR {np.mean(fixed):.3f} +/- {np.std(fixed):.3f}"
    )
    for d in DESIGNS:
        v = [r["design_uar"][d] for r in results]
        print(f"  {d:12s} fixed, C chosen on inner folds by weighted UAR: {np.mean(v):.3f} +/- {np.std(v):.3f}")
    print(
        f"({args.inner_folds} inner folds; sd over the {config.folds} outer folds; "
        f"{time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
