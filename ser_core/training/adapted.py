"""The adapted models: trained on features relative to each speaker's own voice, and evaluated
speaker-independently, within RAVDESS and across corpora. The reference model judges relative
to a voice from the speaker's neutral recordings; the same-speaker model relative to the mean of
the session being judged (:mod:`ser_core.inference.voice` defines the words).

Training rows: every training speaker's clips, each time relative to a random draw of one to
``max_references`` of that speaker's own neutral recordings (the draw's references are not among
its rows), ``draws`` times per speaker. A corpus with fewer recordings gets proportionally more
draws, so each corpus weighs about the same; classes are balanced by the logistic regression.
C and the temperature are chosen on inner speaker folds of the training rows alone
(:func:`ser_core.training.fit.fit`).

The same-speaker model is trained the same way on clips relative to the mean of random
sessions of the speaker's own clips (60-100% of them), as ``--same-speaker`` estimates it.

Evaluation (never tuning on what is scored): k-fold by actor on RAVDESS, with 1, 2 and 4
reference clips of the test speaker (those clips are not scored), and the same-speaker path on
balanced and on one-emotion-dominated sessions beside the uncalibrated model on the same clips;
leave-one-corpus-out in both directions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..emotions import NEUTRAL
from ..errors import ParameterError
from ..inference.voice import ADAPTATION_MODES, relative, same_speaker_mean
from .fit import TrainConfig, actor_folds, evaluate_predictions, fit

__all__ = ["AdaptationConfig", "Corpus", "train_reference", "train_same_speaker", "evaluate_adapted"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptationConfig:
    """Everything that decides the adapted models and their evaluation; written into the bundle."""

    mode: str = "concat"
    draws: int = 2  # reference draws per speaker of the largest corpus; smaller corpora get more
    max_references: int = 4
    c_grid: tuple[float, ...] = (0.01,)  # fixed beforehand (inner folds still fit the temperature): the fits are large
    inner_folds: int = 2
    eval_references: tuple[int, ...] = (1, 2, 4)
    eval_draws: int = 5  # random reference draws per test speaker and k
    dominated_share: float = 0.8  # one-emotion-dominated sessions: this share of one emotion

    def __post_init__(self) -> None:
        if self.mode not in ADAPTATION_MODES:
            raise ParameterError(f"Unknown adaptation mode {self.mode!r}; choose one of {list(ADAPTATION_MODES)}.")
        if self.draws < 1 or self.max_references < 1 or self.eval_draws < 1:
            raise ParameterError("draws, max_references and eval_draws must be at least 1.")
        if not 0.5 <= self.dominated_share < 1.0:
            raise ParameterError("dominated_share must lie in [0.5, 1).")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Corpus:
    """The original (not augmented) recordings of one corpus: raw features, labels, speakers."""

    name: str
    features: np.ndarray  # (n, n_features) float32
    labels: np.ndarray  # (n,) class index
    speakers: np.ndarray  # (n,) speaker id, unique across corpora

    def subset(self, speakers: list[int]) -> Corpus:
        rows = np.isin(self.speakers, speakers)
        return replace(self, features=self.features[rows], labels=self.labels[rows], speakers=self.speakers[rows])


def _reference_rows(
    corpus: Corpus, neutral: int, draws: int, max_refs: int, mode: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows relative to random draws of each speaker's own neutral clips: ``(x, y, speakers)``."""
    xs, ys, groups = [], [], []
    for speaker in np.unique(corpus.speakers):
        rows = np.flatnonzero(corpus.speakers == speaker)
        neutral_rows = rows[corpus.labels[rows] == neutral]
        if len(neutral_rows) < 2:
            continue  # no reference to draw, or nothing neutral left to learn from
        for _ in range(draws):
            k = int(rng.integers(1, min(max_refs, len(neutral_rows) - 1) + 1))
            refs = rng.choice(neutral_rows, k, replace=False)
            keep = np.setdiff1d(rows, refs)
            xs.append(relative(corpus.features[keep], corpus.features[refs].mean(axis=0), mode))
            ys.append(corpus.labels[keep])
            groups.append(corpus.speakers[keep])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)


def train_reference(corpora: list[Corpus], config: TrainConfig, cal: AdaptationConfig, *, desc: str):
    """The reference model on ``corpora``, as :func:`fit` returns it."""
    rng = np.random.default_rng(config.random_seed)
    neutral = config.emotions.index(NEUTRAL)
    largest = max(len(c.labels) for c in corpora)
    parts = [
        _reference_rows(c, neutral, round(cal.draws * largest / len(c.labels)), cal.max_references, cal.mode, rng)
        for c in corpora
    ]
    return _fit_parts(parts, config, cal, desc)


def _fit_parts(parts: list[tuple[np.ndarray, ...]], config: TrainConfig, cal: AdaptationConfig, desc: str):
    """:func:`fit` (the linear recipe with the adaptation's C and inner folds) on the rows of every corpus."""
    x, y, groups = (np.concatenate(column) for column in zip(*parts, strict=True))
    inner = replace(config, architecture="linear", c_grid=cal.c_grid, inner_folds=cal.inner_folds)
    return fit(x, y, groups, np.zeros(len(y), bool), inner, desc=desc)


def _session_rows(
    corpus: Corpus, draws: int, mode: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows relative to the mean of a session of each speaker's own clips (a random 60-100% of
    them, ``draws`` times): what ``--same-speaker`` sees. ``(x, y, speakers)``."""
    xs, ys, groups = [], [], []
    for speaker in np.unique(corpus.speakers):
        rows = np.flatnonzero(corpus.speakers == speaker)
        for _ in range(draws):
            session = rng.choice(rows, max(2, int(len(rows) * rng.uniform(0.6, 1.0))), replace=False)
            xs.append(relative(corpus.features[session], corpus.features[session].mean(axis=0), mode))
            ys.append(corpus.labels[session])
            groups.append(corpus.speakers[session])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)


def train_same_speaker(corpora: list[Corpus], config: TrainConfig, cal: AdaptationConfig, *, desc: str):
    """The same-speaker model on ``corpora``, as :func:`fit` returns it."""
    rng = np.random.default_rng([config.random_seed, 1])
    largest = max(len(c.labels) for c in corpora)
    parts = [_session_rows(c, round(cal.draws * largest / len(c.labels)), cal.mode, rng) for c in corpora]
    return _fit_parts(parts, config, cal, desc)


def _score_references(
    fitted, test: Corpus, neutral: int, k: int, cal: AdaptationConfig, rng: np.random.Generator, classes
) -> dict:
    """Each test speaker judged relative to ``k`` of their own neutral clips (not scored), ``eval_draws`` times."""
    truth, probs = [], []
    for _ in range(cal.eval_draws):
        for speaker in np.unique(test.speakers):
            rows = np.flatnonzero(test.speakers == speaker)
            neutral_rows = rows[test.labels[rows] == neutral]
            if len(neutral_rows) < k:
                continue
            refs = rng.choice(neutral_rows, k, replace=False)
            keep = np.setdiff1d(rows, refs)
            x = relative(test.features[keep], test.features[refs].mean(axis=0), cal.mode)
            probs.append(fitted.probabilities(x))
            truth.append(test.labels[keep])
    return _summary(np.concatenate(truth), np.concatenate(probs), classes)


def _summary(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """UAR over the classes present, accuracy, per-class recall (the model chooses among all classes)."""
    metrics = evaluate_predictions(y, probs, classes)
    return {key: metrics[key] for key in ("uar", "accuracy", "per_class_recall", "n")}


def _sessions(test: Corpus, share: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows of one-emotion-dominated sessions: per speaker and emotion, all its clips of that
    emotion plus random clips of the others so that it makes ``share`` of the session."""
    sessions = []
    for speaker in np.unique(test.speakers):
        rows = np.flatnonzero(test.speakers == speaker)
        for label in np.unique(test.labels[rows]):
            main = rows[test.labels[rows] == label]
            others = rows[test.labels[rows] != label]
            n_other = min(len(others), max(1, round(len(main) * (1 - share) / share)))
            sessions.append(np.concatenate([main, rng.choice(others, n_other, replace=False)]))
    return sessions


def _score_same_speaker(session_model, plain, sessions: list[np.ndarray], test: Corpus, classes, cal) -> dict:
    """Each session judged by the same-speaker model relative to a voice estimated from itself
    (or, where :func:`same_speaker_mean` declines, without adaptation), beside the uncalibrated model."""
    truth, adapted, uncalibrated, declined = [], [], [], 0
    for rows in sessions:
        x = test.features[rows]
        before = plain.probabilities(x)
        mean = same_speaker_mean(x, before)
        declined += mean is None
        adapted.append(before if mean is None else session_model.probabilities(relative(x, mean, cal.mode)))
        uncalibrated.append(before)
        truth.append(test.labels[rows])
    y = np.concatenate(truth)
    return {
        "same_speaker": _summary(y, np.concatenate(adapted), classes),
        "uncalibrated": _summary(y, np.concatenate(uncalibrated), classes),
        "sessions": len(sessions),
        "not_adapted": declined,
    }


def _balanced_sessions(test: Corpus) -> list[np.ndarray]:
    return [np.flatnonzero(test.speakers == s) for s in np.unique(test.speakers)]


def _evaluate_split(train: list[Corpus], test: Corpus, config: TrainConfig, cal: AdaptationConfig, desc: str) -> dict:
    """Fit both models on ``train`` and score ``test`` every way: calibrated with k references,
    same-speaker on balanced and dominated sessions, uncalibrated."""
    rng = np.random.default_rng([config.random_seed, len(test.labels)])
    classes, neutral = config.emotions, config.emotions.index(NEUTRAL)
    fitted = train_reference(train, config, cal, desc=f"{desc}: calibrated")
    session = train_same_speaker(train, config, cal, desc=f"{desc}: same-speaker")
    x = np.concatenate([c.features for c in train])
    plain_config = replace(config, architecture="linear", c_grid=cal.c_grid, inner_folds=cal.inner_folds)
    plain = fit(
        x,
        np.concatenate([c.labels for c in train]),
        np.concatenate([c.speakers for c in train]),
        np.zeros(len(x), bool),
        plain_config,
        desc=f"{desc}: uncalibrated",
    )
    result = {
        "uncalibrated": _summary(test.labels, plain.probabilities(test.features), classes),
        "calibrated": {
            str(k): _score_references(fitted, test, neutral, k, cal, rng, classes) for k in cal.eval_references
        },
        "balanced_sessions": _score_same_speaker(session, plain, _balanced_sessions(test), test, classes, cal),
        "dominated_sessions": _score_same_speaker(
            session, plain, _sessions(test, cal.dominated_share, rng), test, classes, cal
        ),
        "c": fitted.details.get("c"),
    }
    log.info(
        "%s: uncalibrated UAR %.3f, calibrated (2 refs) %.3f, same-speaker balanced %.3f",
        desc,
        result["uncalibrated"]["uar"],
        result["calibrated"].get("2", {}).get("uar", float("nan")),
        result["balanced_sessions"]["same_speaker"]["uar"],
    )
    return result


def _mean_of(folds: list[dict]) -> dict:
    """Fold means of every UAR and accuracy in the nested fold results."""
    first = folds[0]
    if isinstance(first, dict) and "uar" in first:
        return {
            "uar": float(np.mean([f["uar"] for f in folds])),
            "accuracy": float(np.mean([f["accuracy"] for f in folds])),
            "worst_uar": float(np.min([f["uar"] for f in folds])),
            "per_class_recall": {
                c: float(np.mean([f["per_class_recall"][c] for f in folds])) for c in first["per_class_recall"]
            },
        }
    out = {key: _mean_of([f[key] for f in folds]) for key in first if isinstance(first[key], dict)}
    counts = {key: int(sum(f[key] for f in folds)) for key in first if type(first[key]) is int}  # summed, not averaged
    return {**out, **counts}


def evaluate_adapted(ravdess: Corpus, others: list[Corpus], config: TrainConfig, cal: AdaptationConfig) -> dict:
    """k-fold by actor on RAVDESS (the other corpora always in training) and leave-one-corpus-out."""
    folds = []
    for i, test_actors in enumerate(actor_folds(np.unique(ravdess.speakers).tolist(), config.folds)):
        train_actors = [a for a in np.unique(ravdess.speakers).tolist() if a not in test_actors]
        result = _evaluate_split(
            [ravdess.subset(train_actors), *others],
            ravdess.subset(test_actors),
            config,
            cal,
            f"calibrated fold {i + 1}/{config.folds}",
        )
        folds.append({**result, "test_actors": test_actors})
    out = {
        "ravdess_kfold": {
            "protocol": f"{config.folds}-fold by RAVDESS actor; {', '.join(c.name for c in others) or 'no other corpus'} "
            "always in training; reference clips drawn from the test speaker's neutral recordings and not scored",
            "mean": _mean_of(folds),
            "folds": folds,
        }
    }
    corpora = [ravdess, *others]
    for held in corpora:
        rest = [c for c in corpora if c is not held]
        if not rest:
            continue
        trained_classes = sorted(set(np.concatenate([c.labels for c in rest]).tolist()))
        shared = held.subset(np.unique(held.speakers).tolist())
        rows = np.isin(shared.labels, trained_classes)
        shared = replace(
            shared, features=shared.features[rows], labels=shared.labels[rows], speakers=shared.speakers[rows]
        )
        result = _evaluate_split(rest, shared, config, cal, f"without {held.name}")
        out[f"without_{held.name}"] = {
            "protocol": f"trained on {', '.join(c.name for c in rest)} only, scored on {held.name}'s classes that "
            "training knows; the model chooses among all classes",
            **result,
        }
    return out
