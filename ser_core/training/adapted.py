"""The adapted model: trained on every training speaker's clips normalised by that speaker, and
evaluated speaker-independently, within RAVDESS and across corpora, exactly as it is served.

The training population gives the statistics serving needs (:class:`~ser_core.inference.voice.Population`:
pooled within-speaker spread, neutral-to-all spread ratio, per-emotion offsets, the mean neutral
voice, empirical-Bayes shrinkage constants). Training rows come in units, one per training
speaker and per copy of their clips (the original and each augmented copy, each normalised by
statistics of that same copy): half the units at random are normalised as calibration does it,
from 1, 2 or 4 of the speaker's neutral clips (which are then left out of the unit's rows), the
other half as a session is, from all the unit's clips less the emotional shift of their true
mix of labels. So one model serves both kinds of voice.

Sample weights are explicit: each corpus weighs ``N_c ** (1 - alpha)`` in total, and every class
the same (over all corpora, ``"pooled"``, or within each corpus, ``"corpus"``); ``alpha``, the
class balance and C are chosen on inner speaker folds (each holding a share of every training
corpus's speakers) of the training speakers' original clips, the temperature on their
out-of-fold logits; the final model is fitted on every copy.

Evaluation (never tuning on what is scored): RAVDESS k-fold by actor with the other corpora
always in training, and leave-one-corpus-out for each corpus, scoring the held-out speakers'
original clips: the default model's verdicts (the served recipe, trained on the split's RAVDESS
speakers, or on the other corpora when RAVDESS is held out), relative to 1, 2 and 4 of the
speaker's own neutral clips (not scored), and same-speaker on balanced sessions (all of a
speaker's clips) and on one-emotion-dominated ones (80% one emotion), each beside the default
model on the same clips. Voices are built and applied by the serving code itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..emotions import NEUTRAL
from ..errors import ParameterError
from ..inference.voice import SPREAD_SHRINK, Population, Voice
from .fit import (
    Fitted,
    TrainConfig,
    announce,
    class_logits,
    evaluate_predictions,
    fit,
    fit_temperature,
    softmax_network,
    standardiser,
)

__all__ = [
    "AdaptationConfig",
    "Corpus",
    "fit_population",
    "training_rows",
    "sample_weights",
    "train_adapted",
    "evaluate_adapted",
]

log = logging.getLogger(__name__)

BALANCES = ("pooled", "corpus")
SPREAD_FLOOR = 1e-6
K_FLOOR = 1e-6  # a shrinkage constant never 0: one clip then moves a voice all the way, never beyond


@dataclass(frozen=True)
class AdaptationConfig:
    """Everything that decides the adapted model and its evaluation; written into the bundle."""

    c_grid: tuple[float, ...] = (0.001, 0.003, 0.01)
    alpha_grid: tuple[float, ...] = (0.5, 1.0)  # corpus weight exponent: 0 every row equal, 1 every corpus equal
    balance_grid: tuple[str, ...] = BALANCES
    inner_folds: int = 3
    reference_share: float = 0.5  # share of training units normalised from neutral references
    train_references: tuple[int, ...] = (1, 2, 4)  # neutral clips of a reference unit, cycled
    eval_references: tuple[int, ...] = (1, 2, 4)
    eval_draws: int = 5  # random reference draws per test speaker and count
    dominated_share: float = 0.8  # one-emotion-dominated sessions: this share of one emotion
    tol: float = 1e-3  # of the logistic regression's solver

    def __post_init__(self) -> None:
        if not self.c_grid or min(self.c_grid) <= 0 or not self.alpha_grid:
            raise ParameterError("The adaptation's C grid must hold positive values and its alpha grid one value.")
        if not set(self.balance_grid) <= set(BALANCES) or not self.balance_grid:
            raise ParameterError(f"The class balances must be among {list(BALANCES)}.")
        if self.inner_folds < 2 or not 0 <= self.reference_share <= 1 or self.eval_draws < 1:
            raise ParameterError("inner_folds must be at least 2, reference_share within 0-1, eval_draws at least 1.")
        if not 0.5 <= self.dominated_share < 1.0:
            raise ParameterError("dominated_share must lie in [0.5, 1).")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Corpus:
    """Every row of one corpus's feature table: originals and augmented copies, with the speech
    seconds of each row's file (what a voice counts)."""

    name: str
    features: np.ndarray  # (n, n_features) float32
    labels: np.ndarray  # (n,) class index
    speakers: np.ndarray  # (n,) speaker id, unique across corpora
    files: np.ndarray  # (n,) file index within the corpus
    copies: np.ndarray  # (n,) 0 the original, 1.. each augmented copy
    seconds: np.ndarray  # (n,) seconds of speech in the row's file

    def subset(self, speakers: list[int]) -> Corpus:
        return _rows(self, np.isin(self.speakers, speakers))

    @property
    def originals(self) -> Corpus:
        return _rows(self, self.copies == 0)


# ---------------------------------------------------------------- the population


def fit_population(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, n_classes: int, neutral: int) -> Population:
    """The training population's speaker statistics from original clips ``x`` ``(n, d)`` with labels
    ``y`` (``neutral`` the index of the neutral class) and speaker ids: each speaker counts once."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    is_neutral = y == neutral
    variances, log_ratios, neutral_means, neutral_variances, neutral_noise = [], [], [], [], []
    offsets, counts = np.zeros((n_classes, d)), np.zeros(n_classes)
    for s in np.unique(speakers):
        mine = speakers == s
        xs, ys = x[mine], y[mine]
        sd = xs.std(axis=0, ddof=1)
        variances.append(sd**2)
        calm = x[mine & is_neutral]
        if not len(calm):
            continue
        centre = calm.mean(axis=0)
        neutral_means.append(centre)
        if len(calm) >= 2:
            neutral_variances.append(calm.var(axis=0, ddof=1))
            neutral_noise.append(neutral_variances[-1] / len(calm))
        if len(calm) >= 3:
            log_ratios.append(
                np.log(np.maximum(sd, SPREAD_FLOOR)) - np.log(np.maximum(calm.std(axis=0, ddof=1), SPREAD_FLOOR))
            )
        for c in np.unique(ys):
            offsets[c] += (xs[ys == c].mean(axis=0) - centre) / np.maximum(sd, SPREAD_FLOOR)
            counts[c] += 1
    if not neutral_means:
        raise ParameterError(
            "The adapted model needs training speakers with neutral clips: a voice is their neutral voice."
        )
    spread = np.sqrt(np.mean(variances, axis=0))
    spread = np.maximum(spread, max(SPREAD_FLOOR, 1e-6 * float(np.median(spread))))
    within = np.mean(neutral_variances, axis=0) if neutral_variances else spread**2
    # the true neutral voices' variance between speakers: their estimates' variance less its sampling noise
    # (with too few speakers to tell, next to none: a voice then moves little from the population's)
    spread_of_means = np.var(neutral_means, axis=0, ddof=1) if len(neutral_means) > 1 else np.zeros_like(within)
    noise = np.mean(neutral_noise, axis=0) if neutral_noise else np.zeros_like(within)
    between = np.maximum(np.maximum(spread_of_means - noise, 1e-3 * within), 1e-12)  # constant features too
    return Population(
        spread=spread,
        ratio=np.exp(np.mean(log_ratios, axis=0)) if log_ratios else np.ones(d),
        offsets=offsets / np.maximum(counts, 1)[:, None],
        centre=np.mean(neutral_means, axis=0),
        k_reference=np.maximum(within / between, K_FLOOR),
        k_session=np.maximum(spread**2 / between, K_FLOOR),
    )


def _neutral(config: TrainConfig) -> int:
    if NEUTRAL not in config.emotions:
        raise ParameterError(f"The adapted model needs the class {NEUTRAL!r}: it is what a speaker's voice is.")
    return config.emotions.index(NEUTRAL)


def _session_normaliser(x: np.ndarray, y: np.ndarray, population: Population) -> tuple[np.ndarray, np.ndarray]:
    """A training unit's statistics from all its clips: their spread shrunk toward the population,
    and their mean less the emotional shift of their true mix of labels, shrunk toward the
    population's neutral voice (serving uses the default model's verdicts for the mix)."""
    n = len(x)
    spread = population.spread
    if n >= 2:
        v = (n - 1) / (n - 1 + SPREAD_SHRINK)
        own = np.log(np.maximum(x.std(axis=0, ddof=1), 1e-3 * population.spread))
        spread = np.exp(v * own + (1 - v) * np.log(population.spread))
    mix = np.bincount(y, minlength=len(population.offsets)) / n
    neutral = x.mean(axis=0) - spread * (mix @ population.offsets)
    w = n / (n + population.k_session)
    return population.centre + w * (neutral - population.centre), spread


def training_rows(
    corpora: list[Corpus], population: Population, cal: AdaptationConfig, rng: np.random.Generator, neutral: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every training row normalised by its unit's statistics: ``(z, labels, speakers, corpus
    index, copies)``. A unit is a speaker's clips of one copy (see the module's docstring)."""
    zs, ys, speakers, corpus_ids, copies = [], [], [], [], []
    for i, corpus in enumerate(corpora):
        for s in np.unique(corpus.speakers):
            mine = np.flatnonzero(corpus.speakers == s)
            for j in np.unique(corpus.copies[mine]):
                unit = mine[corpus.copies[mine] == j]
                x, y = corpus.features[unit].astype(np.float64), corpus.labels[unit]
                calm = np.flatnonzero(y == neutral)
                n_refs = cal.train_references[(7 * int(s) + int(j)) % len(cal.train_references)]
                if rng.random() < cal.reference_share and len(calm) >= 2:
                    refs = rng.choice(calm, min(n_refs, len(calm) - 1), replace=False)
                    voice = Voice("").with_reference(x[refs], 0.0)
                    location, spread = population.normaliser(voice)
                    keep = np.setdiff1d(np.arange(len(unit)), refs)
                else:
                    location, spread = _session_normaliser(x, y, population)
                    keep = np.arange(len(unit))
                zs.append(((x[keep] - location) / spread).astype(np.float32))
                ys.append(y[keep])
                speakers.append(corpus.speakers[unit][keep])
                corpus_ids.append(np.full(len(keep), i))
                copies.append(corpus.copies[unit][keep])
    return tuple(np.concatenate(part) for part in (zs, ys, speakers, corpus_ids, copies))  # type: ignore[return-value]


def sample_weights(corpus: np.ndarray, y: np.ndarray, alpha: float, balance: str, n_classes: int) -> np.ndarray:
    """Explicit weights of training rows, mean 1: corpus ``c`` of ``N_c`` rows weighs
    ``N_c ** (1 - alpha)`` in total (``alpha`` 0 every row equal, 1 every corpus equal); every class
    the same total over all corpora (``"pooled"``) or within each corpus (``"corpus"``)."""
    _, inverse, counts = np.unique(corpus, return_inverse=True, return_counts=True)
    if balance == "pooled":
        w = counts[inverse].astype(np.float64) ** -alpha
        totals = np.bincount(y, weights=w, minlength=n_classes)
        w = w / totals[y]
    else:
        w = np.zeros(len(y))
        for i, n in enumerate(counts):
            rows = inverse == i
            per_class = np.bincount(y[rows], minlength=n_classes)
            w[rows] = float(n) ** (1 - alpha) / (np.count_nonzero(per_class) * per_class[y[rows]])
    return w / w.mean()


# ---------------------------------------------------------------- fitting


def _weighted_logistic(z: np.ndarray, y: np.ndarray, w: np.ndarray, c: float, tol: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, tol=tol, max_iter=1000).fit(z, y, sample_weight=w)


def _inner_folds(speakers: np.ndarray, corpus: np.ndarray, k: int) -> list[np.ndarray]:
    """``k`` groups of speakers, each holding about a ``1/k`` share of every corpus's speakers."""
    folds: list[list[int]] = [[] for _ in range(k)]
    for c in np.unique(corpus):
        for i, s in enumerate(np.unique(speakers[corpus == c])):
            folds[i % k].append(int(s))
    return [np.array(f) for f in folds if f]


def train_adapted(
    corpora: list[Corpus], config: TrainConfig, cal: AdaptationConfig, *, desc: str
) -> tuple[Fitted, Population]:
    """The adapted model on ``corpora`` and the population statistics it needs when serving.

    ``alpha``, the class balance and C are chosen on inner speaker folds of the original rows
    (each inner fold's population from its own training speakers), the temperature on their
    out-of-fold logits; the returned :class:`Fitted` holds the softmax layer with the temperature
    folded in and the standardisation of the normalised rows."""
    from tqdm.auto import tqdm

    neutral = _neutral(config)
    announce(desc)
    n_classes = len(config.emotions)
    originals = [c.originals for c in corpora]
    every = np.concatenate([c.speakers for c in originals])
    corpus_of = np.concatenate([np.full(len(c.speakers), i) for i, c in enumerate(originals)])
    folds = _inner_folds(every, corpus_of, cal.inner_folds)
    grid = [(a, b, c) for a in cal.alpha_grid for b in cal.balance_grid for c in cal.c_grid]
    scores = {key: [] for key in grid}
    oof: dict = {key: [] for key in grid}
    with tqdm(total=len(folds), desc=f"{desc}: inner folds", leave=False) as bar:
        for held in folds:
            train = [c.subset(np.setdiff1d(np.unique(c.speakers), held).tolist()) for c in originals]
            test = [c.subset(np.intersect1d(np.unique(c.speakers), held).tolist()) for c in originals]
            train, test = [c for c in train if len(c.labels)], [c for c in test if len(c.labels)]
            population = _population(train, n_classes, neutral)
            rng = np.random.default_rng([config.random_seed, len(held)])
            z, y, _, corpus, _ = training_rows(train, population, cal, rng, neutral)
            zt, yt, _, ct, _ = training_rows(test, population, cal, rng, neutral)
            mean, scale = standardiser(z)
            for alpha, balance, c in grid:
                w = sample_weights(corpus, y, alpha, balance, n_classes)
                model = _weighted_logistic((z - mean) / scale, y, w, c, cal.tol)
                logits = class_logits(model, (zt - mean) / scale, n_classes)
                per_corpus = [
                    evaluate_predictions(yt[ct == i], logits[ct == i], config.emotions)["uar"] for i in np.unique(ct)
                ]
                scores[(alpha, balance, c)].append(float(np.mean(per_corpus)))
                oof[(alpha, balance, c)].append((logits, yt))
            bar.update(1)
    mean_scores = {key: float(np.mean(v)) for key, v in scores.items()}
    alpha, balance, c = max(grid, key=lambda key: mean_scores[key])
    temperature = fit_temperature(
        np.concatenate([lo for lo, _ in oof[(alpha, balance, c)]]),
        np.concatenate([t for _, t in oof[(alpha, balance, c)]]),
    )
    population = _population(originals, n_classes, neutral)
    z, y, _, corpus, copies = training_rows(
        corpora, population, cal, np.random.default_rng(config.random_seed), neutral
    )
    mean, scale = standardiser(z)
    w = sample_weights(corpus, y, alpha, balance, n_classes) / len(np.unique(copies))  # C means the same with copies
    model = softmax_network(_weighted_logistic((z - mean) / scale, y, w, c, cal.tol), temperature, n_classes)
    details = {
        "alpha": alpha,
        "balance": balance,
        "c": c,
        "temperature": temperature,
        "inner_uar": {f"alpha={a}, {b}, C={cc}": v for (a, b, cc), v in mean_scores.items()},
        "rows": int(len(y)),
    }
    return Fitted(model, mean, scale, details), population


def _population(corpora: list[Corpus], n_classes: int, neutral: int) -> Population:
    return fit_population(
        np.concatenate([c.features for c in corpora]),
        np.concatenate([c.labels for c in corpora]),
        np.concatenate([c.speakers for c in corpora]),
        n_classes,
        neutral,
    )


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Served:
    """A split's test clips as serving judges them: the default model's probabilities of each
    (precomputed), and the adapted model with its population."""

    default: np.ndarray  # (test rows, classes)
    adapted: Fitted
    population: Population

    def adapted_probabilities(self, rows: np.ndarray, x: np.ndarray, voice: Voice) -> np.ndarray:
        """As :meth:`EmotionClassifier.classify_features` serves a voice: the adapted model when the
        voice knows enough, the default model otherwise."""
        normaliser = self.population.normaliser(voice)
        if normaliser is None:
            return self.default[rows]
        location, spread = normaliser
        return self.adapted.probabilities((x - location) / spread)


def _summary(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """UAR over the classes present, accuracy, per-class recall (the model chooses among all classes)."""
    metrics = evaluate_predictions(y, probs, classes)
    return {key: metrics[key] for key in ("uar", "accuracy", "per_class_recall", "n")}


def _score_references(served: Served, test: Corpus, k: int, neutral: int, cal: AdaptationConfig, rng, classes) -> dict:
    """Each test speaker judged relative to ``k`` of their own neutral clips (not scored), ``eval_draws`` times."""
    truth, probs = [], []
    for _ in range(cal.eval_draws):
        for s in np.unique(test.speakers):
            rows = np.flatnonzero(test.speakers == s)
            calm = rows[test.labels[rows] == neutral]
            if len(calm) < k:
                continue
            refs = rng.choice(calm, k, replace=False)
            keep = np.setdiff1d(rows, refs)
            voice = Voice("").with_reference(test.features[refs], float(test.seconds[refs].sum()))
            probs.append(served.adapted_probabilities(keep, test.features[keep], voice))
            truth.append(test.labels[keep])
    return _summary(np.concatenate(truth), np.concatenate(probs), classes)


def _dominated_sessions(test: Corpus, share: float, rng) -> list[np.ndarray]:
    """Rows of one-emotion-dominated sessions: per speaker and emotion, all its clips of that
    emotion plus random clips of the others so that it makes ``share`` of the session."""
    sessions = []
    for s in np.unique(test.speakers):
        rows = np.flatnonzero(test.speakers == s)
        for label in np.unique(test.labels[rows]):
            main, others = rows[test.labels[rows] == label], rows[test.labels[rows] != label]
            n_other = min(len(others), max(1, round(len(main) * (1 - share) / share)))
            sessions.append(np.concatenate([main, rng.choice(others, n_other, replace=False)]))
    return sessions


def _score_sessions(served: Served, sessions: list[np.ndarray], test: Corpus, classes) -> dict:
    """Each session judged relative to the voice learned from itself (served as ``adapt`` does:
    adapted only from enough speech), beside the default model on the same clips."""
    truth, adapted, default, declined = [], [], [], 0
    for rows in sessions:
        x = test.features[rows]
        voice = Voice("").with_session(x, served.default[rows], float(test.seconds[rows].sum()), len(rows))
        declined += voice.source is None
        adapted.append(served.adapted_probabilities(rows, x, voice))
        default.append(served.default[rows])
        truth.append(test.labels[rows])
    y = np.concatenate(truth)
    return {
        "same_speaker": _summary(y, np.concatenate(adapted), classes),
        "uncalibrated": _summary(y, np.concatenate(default), classes),
        "sessions": len(sessions),
        "not_adapted": declined,
    }


def _evaluate_split(
    train: list[Corpus], test: Corpus, default: np.ndarray, config: TrainConfig, cal: AdaptationConfig, desc: str
) -> dict:
    """Fit the adapted model on ``train`` and score ``test`` (original clips; ``default`` the
    default model's probabilities of each) every way."""
    rng = np.random.default_rng([config.random_seed, len(test.labels)])
    classes, neutral = config.emotions, _neutral(config)
    adapted, population = train_adapted(train, config, cal, desc=f"{desc}: adapted")
    served = Served(default, adapted, population)
    balanced = [np.flatnonzero(test.speakers == s) for s in np.unique(test.speakers)]
    references = {str(k): _score_references(served, test, k, neutral, cal, rng, classes) for k in cal.eval_references}
    result = {
        "uncalibrated": _summary(test.labels, default, classes),
        "calibrated": references,
        "balanced_sessions": _score_sessions(served, balanced, test, classes),
        "dominated_sessions": _score_sessions(
            served, _dominated_sessions(test, cal.dominated_share, rng), test, classes
        ),
        "chosen": {k: adapted.details[k] for k in ("alpha", "balance", "c", "temperature")},
    }
    log.info(
        "%s: default UAR %.3f, reference (2) %.3f, same-speaker balanced %.3f, dominated %.3f (default %.3f)",
        desc,
        result["uncalibrated"]["uar"],
        result["calibrated"].get("2", {}).get("uar", float("nan")),
        result["balanced_sessions"]["same_speaker"]["uar"],
        result["dominated_sessions"]["same_speaker"]["uar"],
        result["dominated_sessions"]["uncalibrated"]["uar"],
    )
    return result


def _mean_of(folds: list[dict]) -> dict:
    """Fold means of every UAR and accuracy in the nested fold results; counts summed."""
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
    out = {key: _mean_of([f[key] for f in folds]) for key in first if isinstance(first[key], dict) and key != "chosen"}
    counts = {key: int(sum(f[key] for f in folds)) for key in first if type(first[key]) is int}
    return {**out, **counts}


def evaluate_adapted(
    ravdess: Corpus,
    others: list[Corpus],
    config: TrainConfig,
    cal: AdaptationConfig,
    held_out: np.ndarray,
    shipped: Fitted,
    fit_default: Callable[[list[Corpus]], Fitted],
) -> dict:
    """k-fold by RAVDESS actor (the other corpora always in training) and leave-one-corpus-out.

    The default model's verdicts, beside which everything is reported and from which a session's
    emotional mix is heard, are those serving would give: for a RAVDESS fold its cross-validation's
    (``held_out``, the probabilities of every row of ``ravdess`` from the fold that held it out);
    for EmoDB or nEMO held out, the ``shipped`` model's (trained on RAVDESS only, it never heard
    them); for RAVDESS held out, ``fit_default(other corpora)``'s."""
    from .fit import actor_folds

    actors = np.unique(ravdess.speakers).tolist()
    originals = ravdess.copies == 0
    folds = []
    for i, test_actors in enumerate(actor_folds(actors, config.folds)):
        train_actors = [a for a in actors if a not in test_actors]
        test_rows = originals & np.isin(ravdess.speakers, test_actors)
        if np.isnan(held_out[test_rows]).any():
            raise ParameterError(
                "The default model's probabilities must come from cross-validation over the same folds."
            )
        result = _evaluate_split(
            [ravdess.subset(train_actors), *others], _rows(ravdess, test_rows), held_out[test_rows], config, cal,
            f"adapted fold {i + 1}/{config.folds}",
        )  # fmt: skip
        folds.append({**result, "test_actors": test_actors})
    names = ", ".join(c.name for c in others) or "no other corpus"
    out = {
        "ravdess_kfold": {
            "protocol": f"{config.folds}-fold by RAVDESS actor; {names} always in training; reference clips drawn "
            "from the test speaker's neutral recordings and not scored",
            "mean": _mean_of(folds),
            "folds": folds,
        }
    }
    corpora = [ravdess, *others]
    for held in corpora:
        rest = [c for c in corpora if c is not held]
        if not rest:
            continue
        trained = sorted(set(np.concatenate([c.labels for c in rest]).tolist()))
        test = _rows(held, (held.copies == 0) & np.isin(held.labels, trained))
        default = (fit_default(rest) if held is ravdess else shipped).probabilities(test.features)
        result = _evaluate_split(rest, test, default, config, cal, f"without {held.name}")
        out[f"without_{held.name}"] = {
            "protocol": f"trained on {', '.join(c.name for c in rest)} only, scored on {held.name}'s classes that "
            "training knows; the model chooses among all classes; the default model "
            + ("trained on the other corpora" if held is ravdess else "as shipped (RAVDESS only)"),
            **result,
        }
    return out


def _rows(corpus: Corpus, rows: np.ndarray) -> Corpus:
    fields = ("features", "labels", "speakers", "files", "copies", "seconds")
    return replace(corpus, **{k: getattr(corpus, k)[rows] for k in fields})


def fit_default_on(corpora: list[Corpus], config: TrainConfig, *, desc: str) -> Fitted:
    """The default recipe (:func:`ser_core.training.fit.fit`) on every row of ``corpora``."""
    rows = [c if config.augment else c.originals for c in corpora]
    return fit(
        np.concatenate([c.features for c in rows]),
        np.concatenate([c.labels for c in rows]),
        np.concatenate([c.speakers for c in rows]),
        np.concatenate([c.copies for c in rows]) > 0,
        config,
        desc=desc,
    )
