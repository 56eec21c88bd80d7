"""The intensity model (normal or strong delivery): trained on RAVDESS's intensity labels beside
the emotion model, on the same features, and evaluated speaker-independently.

One class-balanced logistic head per emotional class (neutral has no strong version), trained
on that emotion's recordings and their augmented copies; C is chosen on inner actor folds of the
training rows alone, each head scored on its own emotion. Evaluation: k-fold by actor as for
the emotion model; in each fold the emotion model of that fold (its cross-validation's scores)
weighs the heads, exactly as serving does (:class:`ser_core.inference.intensity.IntensityModel`), and the
held-out actors' original recordings are scored. EmoDB has no intensity labels, so it has no part.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError
from ..inference.intensity import LEVELS, NO_INTENSITY, IntensityModel
from .corpora import FeatureTable
from .fit import TrainConfig, actor_folds, announce, evaluate_predictions, standardiser

__all__ = ["IntensityConfig", "intensity_labels", "fit_intensity", "train_intensity", "evaluate_intensity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntensityConfig:
    """Everything that decides the intensity model; written into the bundle."""

    c_grid: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03)  # chosen on inner actor folds
    inner_folds: int = 4

    def __post_init__(self) -> None:
        if not self.c_grid or min(self.c_grid) <= 0 or self.inner_folds < 2:
            raise ParameterError("The intensity C grid must hold positive values and inner folds must be at least 2.")

    def to_dict(self) -> dict:
        return asdict(self)


def intensity_labels(table: FeatureTable) -> np.ndarray:
    """Each row's intensity: 0 normal, 1 strong, -1 unknown (neutral, or a corpus without the label)."""
    codes = np.array([table.files[i].intensity for i in table.file_index])
    emotions = np.array([table.files[i].emotion for i in table.file_index])
    return np.where((codes > 0) & ~np.isin(emotions, NO_INTENSITY), codes - 1, -1)


def _heads(z: np.ndarray, strong: np.ndarray, emotion: np.ndarray, n_heads: int, c: float):
    """One class-balanced logistic regression per head index in ``emotion`` (0..n_heads-1):
    ``(weights (n, k), bias (k,))``; a head without both levels in its rows stays at 0.5."""
    from sklearn.linear_model import LogisticRegression

    weights = np.zeros((z.shape[1], n_heads), np.float32)
    bias = np.zeros(n_heads, np.float32)
    for k in range(n_heads):
        rows = emotion == k
        if len(np.unique(strong[rows])) < 2:
            continue
        head = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z[rows], strong[rows])
        weights[:, k], bias[k] = head.coef_[0], head.intercept_[0]
    return weights, bias


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_intensity(
    x: np.ndarray,
    strong: np.ndarray,
    emotion: np.ndarray,
    groups: np.ndarray,
    augmented: np.ndarray,
    emotions: tuple[str, ...],
    cfg: IntensityConfig,
    *,
    desc: str,
) -> tuple[IntensityModel, dict]:
    """The intensity heads on rows ``x`` (raw features) with ``strong`` (0/1) and ``emotion``
    (index into ``emotions``, the emotions with heads), C chosen on inner actor folds of these
    rows (their original recordings scored, each by its own emotion's head)."""
    announce(desc)
    mean, scale = standardiser(x)
    z = (x - mean) / scale
    inner = actor_folds(groups.tolist(), min(cfg.inner_folds, len(set(groups.tolist()))))
    scores = {}
    for c in cfg.c_grid:
        recalls = []
        for held_actors in inner:
            held = np.isin(groups, held_actors)
            valid = held & ~augmented
            weights, bias = _heads(z[~held], strong[~held], emotion[~held], len(emotions), c)
            p = _sigmoid(np.einsum("ij,ji->i", z[valid], weights[:, emotion[valid]]) + bias[emotion[valid]])
            recalls.append(evaluate_predictions(strong[valid], np.c_[1 - p, p], LEVELS)["uar"])
        scores[c] = float(np.mean(recalls))
    best = max(cfg.c_grid, key=lambda c: scores[c])
    weights, bias = _heads(z, strong, emotion, len(emotions), best)
    model = IntensityModel(emotions, weights, bias, mean, scale)
    return model, {"c": best, "inner_uar_by_c": {str(c): v for c, v in scores.items()}}


def _training_rows(
    table: FeatureTable, rows: np.ndarray, config: TrainConfig, cfg: IntensityConfig, desc: str
) -> tuple[IntensityModel, dict] | None:
    """:func:`fit_intensity` on ``rows`` of ``table`` whose emotion has both levels among them
    (a head needs the contrast to learn it); ``None`` when no emotion has."""
    labels = intensity_labels(table)
    rows = rows[labels[rows] >= 0]
    names = np.array([table.files[i].emotion for i in table.file_index[rows]])
    emotions = tuple(
        e for e in config.emotions if e not in NO_INTENSITY and len(np.unique(labels[rows][names == e])) == 2
    )
    if not emotions:
        return None
    keep = np.isin(names, emotions)
    rows, names = rows[keep], names[keep]
    lookup = {e: i for i, e in enumerate(emotions)}
    emotion = np.array([lookup[name] for name in names])
    return fit_intensity(
        table.features[rows],
        labels[rows],
        emotion,
        table.actors()[rows],
        table.augmented[rows],
        emotions,
        cfg,
        desc=desc,
    )


def train_intensity(
    table: FeatureTable, config: TrainConfig, cfg: IntensityConfig, *, desc: str
) -> tuple[IntensityModel, dict] | None:
    """The shipped intensity model: every actor's labelled rows (augmented copies if ``config.augment``);
    ``None`` when the data has no emotion at both levels."""
    rows = np.flatnonzero(config.augment | ~table.augmented)
    return _training_rows(table, rows, config, cfg, desc)


def evaluate_intensity(
    table: FeatureTable, probabilities: np.ndarray, config: TrainConfig, cfg: IntensityConfig
) -> dict | None:
    """k-fold by actor: per fold the heads trained on the other actors, the held-out actors'
    original emotional recordings scored. ``probabilities`` ``(rows, classes)`` are each row's
    emotion probabilities from the emotion model's cross-validation over the same folds
    (:func:`ser_core.training.fit.cross_validate`, ``on_scored``): the emotion model of the fold
    weighs the heads, as when serving. Fold results, mean, and for comparison the heads given the
    true emotion (what a perfect emotion model would allow). ``None`` when a fold's training
    actors have no emotion at both levels."""
    actors, labels, y = table.actors(), intensity_labels(table), table.labels(config.emotions)
    folds = []
    for i, test_actors in enumerate(actor_folds(actors.tolist(), config.folds)):
        desc = f"intensity fold {i + 1}/{config.folds}"
        held_out = np.isin(actors, test_actors)
        train_rows = np.flatnonzero(~held_out & (config.augment | ~table.augmented))
        fitted = _training_rows(table, train_rows, config, cfg, desc)
        if fitted is None:
            log.warning("%s: no emotion at both intensity levels in training; no intensity evaluation", desc)
            return None
        model, details = fitted
        test = np.flatnonzero(held_out & ~table.augmented & (labels >= 0))
        probs = probabilities[test]
        if np.isnan(probs).any():
            raise ParameterError("The emotion probabilities must come from cross-validation over the same folds.")
        strength = model.strength(table.features[test], probs, config.emotions)
        result = evaluate_predictions(labels[test], np.c_[1 - strength, strength], LEVELS)
        oracle = np.eye(len(config.emotions))[y[test]]  # the true emotion, certain
        known = model.strength(table.features[test], oracle, config.emotions)
        result["true_emotion_uar"] = evaluate_predictions(labels[test], np.c_[1 - known, known], LEVELS)["uar"]
        result["called_neutral"] = float(np.mean(np.isin(np.array(config.emotions)[probs.argmax(1)], NO_INTENSITY)))
        result.update(details, test_actors=test_actors)
        log.info("%s (actors %s): accuracy %.3f, UAR %.3f", desc, test_actors, result["accuracy"], result["uar"])
        folds.append(result)
    keys = ("accuracy", "uar", "true_emotion_uar", "called_neutral", "ece")
    worst = min(range(len(folds)), key=lambda i: folds[i]["uar"])
    return {
        "protocol": f"{config.folds}-fold cross-validation by actor on RAVDESS's emotional recordings (neutral has "
        "no intensity label); each fold's emotion model weighs the heads, as when serving",
        "folds": folds,
        "mean": {k: float(np.mean([f[k] for f in folds])) for k in keys},
        "std": {k: float(np.std([f[k] for f in folds])) for k in keys},
        "worst": {"fold": worst + 1, "test_actors": folds[worst]["test_actors"], "uar": folds[worst]["uar"]},
        "per_level_recall": {
            level: float(np.mean([f["per_class_recall"][level] for f in folds]))
            for level in LEVELS
            if all(level in f["per_class_recall"] for f in folds)
        },
        "confusion": np.sum([f["confusion"] for f in folds], axis=0).tolist(),
    }
