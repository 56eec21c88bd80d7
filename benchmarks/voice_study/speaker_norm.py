"""Speaker-normalised emotion models: a speaker's statistics (location and spread of their
features), normalising rows by them, building training rows with explicit corpus and class
weights, fitting the class-balanced logistic regression, and adapting a session at serving time.

Written to be ported into ``ser_core`` as is. Everything here works on raw feature rows of the
rich feature set ``(n, d)``; nothing looks at audio.

The model's input is ``z = (x - location) / spread`` for the speaker the clip ``x`` belongs to.
Two anchors for ``location``:

- ``"neutral"``: the speaker's neutral voice. At serving it is the mean of the reference clips
  (neutral reading), or, from a session of unlabelled clips, the session mean minus the
  expected emotional shift of the session (``offsets`` weighted by the verdicts' average
  probabilities): one model serves both estimates.
- ``"session"``: the mean of the speaker's clips (all of them, any emotion).

``spread`` is a per-feature within-speaker standard deviation, shrunk in the log domain toward
the population's pooled within-speaker spread with weight ``(n - 1) / (n - 1 + k)`` (``n`` clips;
``k = inf``: the population spread, "mean-only").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Population",
    "Stats",
    "fit_population",
    "shrunk_spread",
    "shrunk_location",
    "reference_stats",
    "session_stats",
    "normalise",
    "sample_weights",
    "LinearModel",
    "fit_linear",
    "dominant_share",
    "spread_ratio",
]

NEUTRAL = 0  # index of "neutral" in ser_core.training.corpora.EMOTIONS
_FLOOR = 1e-6


@dataclass(frozen=True)
class Population:
    """What the training speakers say about speakers in general (original clips only). ``(d,)`` or ``(classes, d)``."""

    spread: np.ndarray  # pooled within-speaker standard deviation
    neutral_ratio: np.ndarray  # geometric mean over speakers of (all-clip spread / neutral-clip spread)
    offsets: np.ndarray  # (classes, d): mean over speakers of (class mean - neutral mean) / speaker spread
    centre_neutral: np.ndarray  # mean over speakers of their neutral mean
    centre_session: np.ndarray  # mean over speakers of their all-clip mean
    k_neutral: (
        np.ndarray
    )  # per feature: within-speaker variance of neutral clips / between-speaker variance of neutral means
    k_session: (
        np.ndarray
    )  # per feature: within-speaker variance of all clips / between-speaker variance of all-clip means
    k_neutral_session: (
        np.ndarray
    )  # per feature: within-speaker variance of all clips / between-speaker variance of neutral means


@dataclass(frozen=True)
class Stats:
    """One speaker's location and spread, ``(d,)`` each, and how many clips made them."""

    location: np.ndarray
    spread: np.ndarray
    clips: int


def fit_population(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, n_classes: int) -> Population:
    """Population statistics from the original clips ``x`` ``(n, d)`` of the training speakers
    (labels ``y``, speaker ids ``speakers``). Each speaker counts once."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    variances, log_ratios, neutral_means, session_means = [], [], [], []
    neutral_variances, neutral_noise, session_noise = [], [], []
    offsets_sum, offsets_n = np.zeros((n_classes, d)), np.zeros(n_classes)
    for s in np.unique(speakers):
        xs, ys = x[speakers == s], y[speakers == s]
        sd = xs.std(axis=0, ddof=1)
        variances.append(sd**2)
        session_means.append(xs.mean(axis=0))
        session_noise.append(sd**2 / len(xs))
        neutral = xs[ys == NEUTRAL]
        if len(neutral) == 0:
            continue
        neutral_mean = neutral.mean(axis=0)
        neutral_means.append(neutral_mean)
        if len(neutral) >= 2:
            neutral_variances.append(neutral.var(axis=0, ddof=1))
            neutral_noise.append(neutral_variances[-1] / len(neutral))
        if len(neutral) >= 3:
            log_ratios.append(np.log(np.maximum(sd, _FLOOR)) - np.log(np.maximum(neutral.std(axis=0, ddof=1), _FLOOR)))
        for c in np.unique(ys):
            offsets_sum[c] += (xs[ys == c].mean(axis=0) - neutral_mean) / np.maximum(sd, _FLOOR)
            offsets_n[c] += 1
    spread = np.sqrt(np.mean(variances, axis=0))
    spread = np.maximum(spread, max(_FLOOR, 1e-6 * float(np.median(spread))))
    within_neutral = np.mean(neutral_variances, axis=0)
    # between-speaker variance of the true means: spread of the estimated means less their sampling noise
    between_neutral = np.maximum(
        np.var(neutral_means, axis=0, ddof=1) - np.mean(neutral_noise, axis=0), 1e-3 * within_neutral
    )
    between_session = np.maximum(
        np.var(session_means, axis=0, ddof=1) - np.mean(session_noise, axis=0), 1e-3 * spread**2
    )
    return Population(
        spread=spread.astype(np.float32),
        neutral_ratio=np.exp(np.mean(log_ratios, axis=0)).astype(np.float32),
        offsets=(offsets_sum / np.maximum(offsets_n, 1)[:, None]).astype(np.float32),
        centre_neutral=np.mean(neutral_means, axis=0).astype(np.float32),
        centre_session=np.mean(session_means, axis=0).astype(np.float32),
        k_neutral=(within_neutral / between_neutral).astype(np.float32),
        k_session=(spread**2 / between_session).astype(np.float32),
        k_neutral_session=(spread**2 / between_neutral).astype(np.float32),
    )


def shrunk_spread(clips: np.ndarray, population: Population, k: float, ratio: np.ndarray | float = 1.0) -> np.ndarray:
    """Spread of ``clips`` ``(n, d)`` (times ``ratio``), shrunk in the log domain toward the
    population spread with weight ``(n - 1) / (n - 1 + k)``; the population spread itself when
    ``n < 2`` or ``k`` is infinite. ``(d,)``."""
    n = len(clips)
    if n < 2 or math.isinf(k):
        return population.spread
    w = (n - 1) / (n - 1 + k)
    own = np.log(np.maximum(np.asarray(clips, np.float64).std(axis=0, ddof=1) * ratio, population.spread * 1e-3))
    return np.exp(w * own + (1 - w) * np.log(population.spread)).astype(np.float32)


def shrunk_location(location: np.ndarray, n: int, centre: np.ndarray, k: np.ndarray, shrink: float) -> np.ndarray:
    """``centre + w (location - centre)`` with per-feature weight ``w = n / (n + shrink * k)``: the
    empirical-Bayes estimate of a speaker's mean from ``n`` clips when ``shrink`` is 1 (``k`` =
    within-speaker / between-speaker variance); ``shrink`` 0 keeps ``location``."""
    if shrink <= 0:
        return location
    w = n / (n + shrink * k)
    return centre + w * (location - centre)


def reference_stats(references: np.ndarray, population: Population, k: float, shrink: float = 0.0) -> Stats:
    """A speaker's neutral anchor from ``references`` ``(n, d)``, the features of their neutral
    reading: the mean (shrunk toward the population's neutral centre by ``shrink``, see
    :func:`shrunk_location`), and their spread scaled to all-emotion spread (``neutral_ratio``)
    and shrunk toward the population spread by ``k``."""
    references = np.asarray(references, np.float64)
    n = len(references)
    location = shrunk_location(references.mean(axis=0), n, population.centre_neutral, population.k_neutral, shrink)
    return Stats(
        location.astype(np.float32),
        shrunk_spread(references, population, k, population.neutral_ratio),
        n,
    )


def dominant_share(probabilities: np.ndarray) -> float:
    """The share of clips won by the most frequent verdict. ``(b, classes) -> float``."""
    wins = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return float(wins.max() / max(1, wins.sum()))


def session_stats(
    clips: np.ndarray,
    probabilities: np.ndarray | None,
    population: Population,
    *,
    anchor: str,
    k_spread: float,
    location: str = "mean",
    k_mean: float = 0.0,
    diversity: bool = False,
    shrink: float = 0.0,
    correction: float = 1.0,
) -> Stats:
    """A speaker's statistics from a session's own clips ``(n, d)``.

    ``location``: ``"mean"``, ``"median"`` or ``"trimmed"`` (20% cut at each end, per feature).
    With ``anchor="neutral"`` the expected emotional shift of the session, ``spread * (p @ offsets)``
    with ``p`` the mean of the uncalibrated ``probabilities`` ``(n, classes)``, is taken off, so
    an angry session's anchor is still the speaker's neutral voice. ``correction`` ``c`` in [0, 1]
    uses ``u + c (p - u)`` instead of ``p`` (``u`` uniform over the classes): 0 assumes every
    session has every emotion equally.
    ``shrink``: per-feature empirical-Bayes shrinkage of the location (:func:`shrunk_location`).
    Partial adaptation: the location is further shrunk toward the population centre with weight
    ``n / (n + k_mean)`` (times the verdicts' diversity, ``min(1, 2 (1 - dominant share))``, with
    ``diversity``).
    """
    clips = np.asarray(clips, np.float64)
    n = len(clips)
    if location == "mean":
        loc = clips.mean(axis=0)
    elif location == "median":
        loc = np.median(clips, axis=0)
    elif location == "trimmed":
        cut = int(0.2 * n)
        ordered = np.sort(clips, axis=0)
        loc = ordered[cut : n - cut].mean(axis=0) if n - 2 * cut > 0 else ordered.mean(axis=0)
    else:
        raise ValueError(f"unknown location estimator {location!r}")
    spread = shrunk_spread(clips, population, k_spread)
    if anchor == "neutral":
        if probabilities is None:
            raise ValueError("a neutral anchor from a session needs the uncalibrated probabilities")
        uniform = np.full(len(population.offsets), 1.0 / len(population.offsets))
        mix = uniform + correction * (probabilities.mean(axis=0) - uniform)
        loc = loc - spread * (mix @ population.offsets)
        centre, k_feature = population.centre_neutral, population.k_neutral_session
    elif anchor == "session":
        centre, k_feature = population.centre_session, population.k_session
    else:
        raise ValueError(f"unknown anchor {anchor!r}")
    loc = shrunk_location(loc, n, centre, k_feature, shrink)
    w = n / (n + k_mean) if k_mean > 0 else 1.0
    if diversity and probabilities is not None:
        w *= min(1.0, 2.0 * (1.0 - dominant_share(probabilities)))
    loc = w * loc + (1 - w) * centre
    return Stats(loc.astype(np.float32), spread, n)


def normalise(x: np.ndarray, stats: Stats) -> np.ndarray:
    """``(x - location) / spread``, ``(b, d) -> (b, d)`` float32."""
    return ((np.asarray(x, np.float32) - stats.location) / stats.spread).astype(np.float32)


def sample_weights(
    corpus: np.ndarray, y: np.ndarray, alpha: float, n_classes: int, balance: str = "pooled"
) -> np.ndarray:
    """Explicit corpus and class weights for training rows. Mean weight 1. ``(n,)``.

    Corpus ``c`` with ``N_c`` rows gets total weight proportional to ``N_c ** (1 - alpha)``
    (``alpha`` 0: every row equal; 1: every corpus equal). Classes: ``"pooled"`` gives every class
    the same total weight over all corpora; ``"corpus"`` gives every class present in a corpus the
    same share of that corpus's weight (each corpus is class-balanced on its own).
    """
    names, inverse, counts = np.unique(corpus, return_inverse=True, return_counts=True)
    if balance == "pooled":
        w = counts[inverse].astype(np.float64) ** -alpha
        totals = np.bincount(y, weights=w, minlength=n_classes)
        present = totals > 0
        w = w * (totals[present].sum() / present.sum()) / totals[y]
    elif balance == "corpus":
        w = np.zeros(len(y))
        for i, n in enumerate(counts):
            rows = inverse == i
            per_class = np.bincount(y[rows], minlength=n_classes)
            w[rows] = float(n) ** (1 - alpha) / (np.count_nonzero(per_class) * per_class[y[rows]])
    else:
        raise ValueError(f"unknown class balance {balance!r}")
    return (w / w.mean()).astype(np.float32)


def spread_ratio(clips: np.ndarray, population: Population) -> float:
    """Median over features of log(session spread / population within-speaker spread): about 0
    for a session that covers a speaker's range, below 0 for one held in one emotion."""
    if len(clips) < 2:
        return 0.0
    sd = np.asarray(clips, np.float64).std(axis=0, ddof=1)
    return float(np.median(np.log(np.maximum(sd, 1e-3 * population.spread) / population.spread)))


@dataclass
class LinearModel:
    """Standardiser plus multinomial logistic regression over all ``n_classes`` (absent ones never chosen)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (d, classes)
    intercept: np.ndarray  # (classes,)

    def logits(self, z: np.ndarray) -> np.ndarray:
        return ((np.asarray(z, np.float32) - self.mean) / self.scale) @ self.coef + self.intercept

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        logits = self.logits(z)
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def fit_linear(
    z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    c: float,
    n_classes: int,
    *,
    tol: float = 1e-3,
    max_iter: int = 300,
) -> LinearModel:
    """Multinomial logistic regression (L2, inverse strength ``c``) on standardised ``z`` with sample ``weights``."""
    from sklearn.linear_model import LogisticRegression

    z = np.asarray(z, np.float32)
    mean = z.mean(axis=0)
    scale = z.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
    lr = LogisticRegression(C=c, tol=tol, max_iter=max_iter)
    lr.fit((z - mean) / scale, y, sample_weight=weights)
    coef = np.zeros((z.shape[1], n_classes), np.float32)
    intercept = np.full(n_classes, -30.0, np.float32)
    if len(lr.classes_) == 2:  # sklearn's binary form: one logit
        coef[:, lr.classes_[1]] = lr.coef_[0] / 2
        coef[:, lr.classes_[0]] = -lr.coef_[0] / 2
        intercept[lr.classes_] = [-lr.intercept_[0] / 2, lr.intercept_[0] / 2]
    else:
        coef[:, lr.classes_] = lr.coef_.T
        intercept[lr.classes_] = lr.intercept_
    return LinearModel(mean.astype(np.float32), scale, coef, intercept)
