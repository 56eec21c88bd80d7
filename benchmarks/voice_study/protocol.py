"""Training rows per design, nested selection on inner speaker folds, and the evaluation protocol.

Splits: RAVDESS k-fold by actor (the other corpora always in training) and leave-one-corpus-out.
Every hyper-parameter is chosen on inner speaker folds of the training speakers only; the test
speakers (and their augmented copies) are never in training, and their statistics come only
from their own reference clips (neutral, not scored) or their own session's clips.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from ser_core.emotions import EMOTIONS
from ser_core.training.fit import actor_folds

from .speaker_norm import (
    NEUTRAL,
    LinearModel,
    Population,
    Stats,
    dominant_share,
    fit_linear,
    fit_population,
    normalise,
    reference_stats,
    sample_weights,
    session_stats,
    spread_ratio,
)

log = logging.getLogger(__name__)
N_CLASSES = len(EMOTIONS)
INF = math.inf


# ---------------------------------------------------------------- data


@dataclass
class Data:
    """Every row of the corpora's feature tables (originals and augmented copies)."""

    x: np.ndarray  # (N, d) float32 raw features
    y: np.ndarray  # (N,) class index into EMOTIONS
    speaker: np.ndarray  # (N,) unique across corpora
    corpus: np.ndarray  # (N,) "ravdess" | "emodb" | "nemo"
    file: np.ndarray  # (N,) file id unique across corpora
    copy: np.ndarray  # (N,) 0 original, 1.. augmented copy index (same order for every file)
    seconds: np.ndarray | None = None  # (N,) trimmed speech seconds of the row's file, if known

    @classmethod
    def from_tables(cls, tables: dict, seconds: dict | None = None) -> Data:
        parts, offset = [], 0
        for name, table in tables.items():
            file_index = np.asarray(table.file_index)
            copy = np.zeros(len(file_index), int)
            for i in range(1, len(file_index)):
                copy[i] = copy[i - 1] + 1 if file_index[i] == file_index[i - 1] else 0
            sec = np.asarray(seconds[name])[file_index] if seconds and name in seconds else np.full(len(copy), np.nan)
            parts.append((table.features, table.labels(EMOTIONS), table.actors(), np.full(len(copy), name),
                          file_index + offset, copy, sec))  # fmt: skip
            offset += len(table.files)
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
        return cls(cols[0].astype(np.float32), *cols[1:])

    def rows(self, speakers, *, originals_only: bool = False) -> np.ndarray:
        mask = np.isin(self.speaker, list(speakers))
        if originals_only:
            mask &= self.copy == 0
        return np.flatnonzero(mask)

    def speakers_of(self, corpora) -> list[int]:
        return sorted(np.unique(self.speaker[np.isin(self.corpus, list(corpora))]).tolist())


# ---------------------------------------------------------------- designs and training rows


@dataclass(frozen=True)
class Design:
    """How training (and serving) rows are normalised.

    ``anchor``: ``"none"`` (the uncalibrated model: raw features, global standardisation),
    ``"session"`` (the mean of the speaker's clips) or ``"neutral"`` (the speaker's neutral
    voice: in training the mean of ``train_refs`` random neutral clips, ``0`` meaning all of them).
    ``k_spread``: shrinkage of the spread toward the population (``inf``: population spread).
    ``session_share``: with the neutral anchor, the share of (speaker, copy) units whose anchor
    comes instead from the whole session (mean minus the labels' expected shift), for one model
    trained on both estimates. ``aug_stats``: augmented rows normalised by statistics of the
    speaker's ``"original"`` clips or of the same augmented ``"copy"`` of the clips.
    """

    anchor: str = "neutral"
    k_spread: float = INF
    train_refs: tuple[int, ...] = (1, 2, 4)
    session_share: float = 0.0
    shrink: float = 0.0  # per-feature empirical-Bayes shrinkage of the location (0: none, 1: EB)
    aug_stats: str = "original"
    augment: bool = True
    balance: str = "pooled"  # class weights over all corpora ("pooled") or within each corpus ("corpus")


def _unit_stats(data: Data, source: np.ndarray, design: Design, pop: Population, n_refs: int | None,
                labels: np.ndarray | None) -> Stats:  # fmt: skip
    if design.anchor == "session":
        return session_stats(
            data.x[source], None, pop, anchor="session", k_spread=design.k_spread, shrink=design.shrink
        )
    if n_refs is None:  # neutral anchor estimated from the session, with the true labels' shift
        onehot = np.eye(N_CLASSES, dtype=np.float32)[labels]
        return session_stats(
            data.x[source], onehot, pop, anchor="neutral", k_spread=design.k_spread, shrink=design.shrink
        )
    return reference_stats(data.x[source], pop, design.k_spread, design.shrink)


def training_rows(data: Data, speakers, design: Design, pop: Population, rng: np.random.Generator,
                  *, originals_only: bool = False) -> np.ndarray | tuple:  # fmt: skip
    """Normalised training rows of ``speakers``: ``(z, row_ids)`` (``row_ids`` index ``data``).

    Per speaker and per copy (original, each augmented copy) one set of statistics; with the
    neutral anchor, the reference clips drawn for that unit are not among its rows.
    """
    use_aug = design.augment and not originals_only
    zs, ids = [], []
    for s in speakers:
        srows = data.rows([s]) if use_aug else data.rows([s], originals_only=True)
        originals = srows[data.copy[srows] == 0]
        if design.anchor == "none":
            zs.append(data.x[srows])
            ids.append(srows)
            continue
        for j in np.unique(data.copy[srows]):
            target = srows[data.copy[srows] == j]
            same_copy = design.aug_stats == "copy"
            pool = target if same_copy else originals  # rows the statistics come from
            unit = int(s) * 7 + int(j)
            if design.anchor == "neutral" and rng.random() >= design.session_share:
                neutral = pool[data.y[pool] == NEUTRAL]
                n_refs = design.train_refs[unit % len(design.train_refs)]
                if n_refs == 0 or len(neutral) < 2:
                    refs, keep = neutral, target
                else:
                    refs = rng.choice(neutral, min(n_refs, len(neutral) - 1), replace=False)
                    keep = target[~np.isin(data.file[target], data.file[refs])]
                stats = _unit_stats(data, refs, design, pop, len(refs), None)
            else:
                keep = target
                stats = _unit_stats(data, pool, design, pop, None, data.y[pool])
            zs.append(normalise(data.x[keep], stats))
            ids.append(keep)
    return np.concatenate(zs), np.concatenate(ids)


def population_of(data: Data, speakers) -> Population:
    rows = data.rows(speakers, originals_only=True)
    return fit_population(data.x[rows], data.y[rows], data.speaker[rows], N_CLASSES)


def fit_design(data: Data, speakers, design: Design, c: float, alpha: float, *, seed: int,
               originals_only: bool = False) -> tuple[LinearModel, Population]:  # fmt: skip
    """Population statistics and the model of ``design`` fitted on ``speakers`` (sample weights: corpus ``alpha``, classes balanced)."""
    pop = population_of(data, speakers)
    z, ids = training_rows(data, speakers, design, pop, np.random.default_rng(seed), originals_only=originals_only)
    w = sample_weights(data.corpus[ids], data.y[ids], alpha, N_CLASSES, design.balance)
    w /= len(
        np.unique(data.copy[ids])
    )  # every clip weighs the same in total with or without its copies: C means the same
    return fit_linear(z, data.y[ids], w, c, N_CLASSES), pop


# ---------------------------------------------------------------- serving rules and scoring


@dataclass(frozen=True)
class SessionRule:
    """How a session's clips become the speaker's statistics, and when not to adapt."""

    location: str = "mean"  # mean | median | trimmed
    k_spread: float = INF  # shrinkage of the session's spread (inf: population spread)
    k_mean: float = 0.0  # partial adaptation: location weight n / (n + k_mean)
    diversity: bool = False  # ... times min(1, 2 (1 - dominant verdict share))
    guard_share: float = 1.01  # decline (uncalibrated verdicts) when one verdict wins more than this share
    min_clips: int = 2  # decline below this many clips
    iterations: int = 0  # neutral anchor: re-estimate the session's emotional shift from the adapted verdicts
    correction: float = 1.0  # neutral anchor: how much of the verdicts' departure from a uniform mix to take off
    spread_guard: float = -INF  # decline when the session's spread_ratio is below this (one emotion held throughout)


def uar(y: np.ndarray, pred: np.ndarray) -> float:
    present = np.unique(y)
    return float(np.mean([(pred[y == c] == c).mean() for c in present]))


def adapt_session(x: np.ndarray, plain_probs: np.ndarray, model: LinearModel, pop: Population, design: Design,
                  rule: SessionRule) -> tuple[np.ndarray, bool]:  # fmt: skip
    """Verdict probabilities for one session's clips ``x`` ``(n, d)``; ``(probs, adapted?)``."""
    if len(x) < rule.min_clips or dominant_share(plain_probs) > rule.guard_share:
        return plain_probs, False
    if rule.spread_guard > -INF and spread_ratio(x, pop) < rule.spread_guard:
        return plain_probs, False
    probs = plain_probs
    for _ in range(1 + (rule.iterations if design.anchor == "neutral" else 0)):
        stats = session_stats(x, probs, pop, anchor=design.anchor, k_spread=rule.k_spread, location=rule.location,
                              k_mean=rule.k_mean, diversity=rule.diversity, shrink=design.shrink,
                              correction=rule.correction)  # fmt: skip
        probs = model.probabilities(normalise(x, stats))
    return probs, True


def score_sessions(data: Data, sessions: list[np.ndarray], plain: LinearModel, model: LinearModel, pop: Population,
                   design: Design, rule: SessionRule) -> dict:  # fmt: skip
    """UAR of the adapted and of the uncalibrated verdicts on the same sessions' clips."""
    truth, adapted, before, declined = [], [], [], 0
    for rows in sessions:
        x = data.x[rows]
        p0 = plain.probabilities(x)
        p1, ok = adapt_session(x, p0, model, pop, design, rule)
        declined += not ok
        truth.append(data.y[rows])
        adapted.append(p1.argmax(1))
        before.append(p0.argmax(1))
    y = np.concatenate(truth)
    return {"adapted": uar(y, np.concatenate(adapted)), "uncalibrated": uar(y, np.concatenate(before)),
            "sessions": len(sessions), "declined": declined, "n": int(len(y))}  # fmt: skip


def score_references(data: Data, test_rows: np.ndarray, model: LinearModel, pop: Population, design: Design,
                     n_refs: int, draws: int, rng: np.random.Generator) -> dict:  # fmt: skip
    """Each test speaker judged relative to ``n_refs`` of their own neutral clips (not scored), ``draws`` times."""
    truth, pred = [], []
    for _ in range(draws):
        for s in np.unique(data.speaker[test_rows]):
            rows = test_rows[data.speaker[test_rows] == s]
            neutral = rows[data.y[rows] == NEUTRAL]
            if len(neutral) < n_refs:  # RAVDESS has 4 neutral clips per actor: with 4 references none is scored
                continue
            refs = rng.choice(neutral, n_refs, replace=False)
            keep = rows[~np.isin(rows, refs)]
            stats = reference_stats(data.x[refs], pop, design.k_spread, design.shrink)
            truth.append(data.y[keep])
            pred.append(model.probabilities(normalise(data.x[keep], stats)).argmax(1))
    y = np.concatenate(truth)
    return {"uar": uar(y, np.concatenate(pred)), "n": int(len(y))}


def balanced_sessions(data: Data, test_rows: np.ndarray) -> list[np.ndarray]:
    return [test_rows[data.speaker[test_rows] == s] for s in np.unique(data.speaker[test_rows])]


def dominated_sessions(data: Data, test_rows: np.ndarray, share: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Per speaker and emotion: all its clips of that emotion plus random clips of the others so
    that it makes ``share`` of the session (as ser_core.training_calibrated._sessions)."""
    sessions = []
    for s in np.unique(data.speaker[test_rows]):
        rows = test_rows[data.speaker[test_rows] == s]
        for label in np.unique(data.y[rows]):
            main, others = rows[data.y[rows] == label], rows[data.y[rows] != label]
            n_other = min(len(others), max(1, round(len(main) * (1 - share) / share)))
            sessions.append(np.concatenate([main, rng.choice(others, n_other, replace=False)]))
    return sessions


def random_sessions(data: Data, test_rows: np.ndarray, n: int, draws: int, dominated: bool, share: float,
                    rng: np.random.Generator) -> list[np.ndarray]:  # fmt: skip
    """``draws`` random sessions of ``n`` clips per test speaker: uniform draws, or ``share`` of one random emotion."""
    sessions = []
    for s in np.unique(data.speaker[test_rows]):
        rows = test_rows[data.speaker[test_rows] == s]
        labels = np.unique(data.y[rows])
        for _ in range(draws):
            if not dominated:
                sessions.append(rng.choice(rows, min(n, len(rows)), replace=False))
                continue
            label = rng.choice(labels)
            main, others = rows[data.y[rows] == label], rows[data.y[rows] != label]
            n_main = min(len(main), max(1, round(share * n)))
            sessions.append(np.concatenate([rng.choice(main, n_main, replace=False),
                                            rng.choice(others, min(len(others), n - n_main), replace=False)]))  # fmt: skip
    return sessions


# ---------------------------------------------------------------- nested selection


def inner_folds(data: Data, speakers, k: int) -> list[list[int]]:
    """``k`` inner folds of ``speakers``, each holding about 1/k of every corpus's speakers."""
    folds = [[] for _ in range(k)]
    for name in np.unique(data.corpus[data.rows(speakers)]):
        own = sorted(set(speakers) & set(data.speakers_of([name])))
        for i, part in enumerate(actor_folds(own, min(k, len(own)))):
            folds[i].extend(part)
    return [f for f in folds if f]


def per_corpus_uar(data: Data, rows: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the corpora present of each corpus's UAR: every corpus counts the same."""
    return float(np.mean([uar(data.y[rows][m], pred[m]) for m in
                          (data.corpus[rows] == c for c in np.unique(data.corpus[rows]))]))  # fmt: skip


@dataclass
class Grid:
    c: tuple[float, ...] = (0.001, 0.003, 0.01)
    alpha: tuple[float, ...] = (0.0, 0.5, 1.0)
    balance: tuple[str, ...] = ("pooled", "corpus")
    k_spread: tuple[float, ...] = (INF, 4.0)  # neutral anchor: chosen after (alpha, C), at the chosen (alpha, C)
    folds: int = 3


def select(data: Data, speakers, design: Design, grid: Grid, *, seed: int, plain_oof: dict | None = None) -> dict:
    """Choose (C, alpha[, k_spread]) for ``design`` on inner speaker folds of ``speakers`` (original rows only).

    Objective: mean over corpora of the inner held-out UAR; for adapted designs the mean of the
    reference-2 and balanced-session UARs (the neutral anchor) or the balanced-session UAR (the
    session anchor). Returns the choice, the grid's scores, and what the session rules need.
    """
    folds = inner_folds(data, speakers, grid.folds)
    scores, keep = {}, {}

    def run(k, alpha, c, balance):
        d = replace(design, k_spread=k, balance=balance)
        parts, fitted = [], []
        for i, held in enumerate(folds):
            train = [s for s in speakers if s not in held]
            model, pop = fit_design(data, train, d, c, alpha, seed=seed + i, originals_only=True)
            rows = data.rows(held, originals_only=True)
            fitted.append((held, model, pop))
            parts.append(_inner_scores(data, rows, model, pop, d, plain_oof, seed + i))
        key = (k, alpha, c, balance)
        scores[key] = _objective(data, parts, design.anchor)
        keep[key] = fitted
        log.info("inner %s k=%s alpha=%s C=%s balance=%s: %.4f", design.anchor, k, alpha, c, balance, scores[key])

    for balance in grid.balance:  # first class balance, corpus exponent and C at the design's own spread shrinkage
        for alpha in grid.alpha:
            for c in grid.c:
                run(design.k_spread, alpha, c, balance)
    best = max(scores, key=scores.get)
    if design.anchor == "neutral":  # then the spread shrinkage at the chosen (alpha, C, balance)
        for k in grid.k_spread:
            if (k, *best[1:]) not in scores:
                run(k, *best[1:])
        best = max(scores, key=scores.get)
    out = {"k_spread": best[0], "alpha": best[1], "c": best[2], "balance": best[3],
           "inner_scores": {f"k={k},alpha={a},C={c},{b}": round(v, 4) for (k, a, c, b), v in scores.items()}}  # fmt: skip
    if design.anchor == "none":
        out["plain"] = {"models": [(held, model) for held, model, _ in keep[best]]}
    else:
        out["fitted"] = keep[best]
    return out


def _inner_scores(data, rows, model, pop, design, plain_oof, seed):
    """Predictions on inner held-out rows under the modes the design serves."""
    if design.anchor == "none":
        return {"rows": rows, "pred": model.probabilities(data.x[rows]).argmax(1)}
    out = {}
    rng = np.random.default_rng(seed)
    if design.anchor == "neutral":
        pred, ids = [], []
        for s in np.unique(data.speaker[rows]):
            srows = rows[data.speaker[rows] == s]
            neutral = srows[data.y[srows] == NEUTRAL]
            if len(neutral) < 3:
                continue
            refs = rng.choice(neutral, 2, replace=False)
            keep = srows[~np.isin(srows, refs)]
            stats = reference_stats(data.x[refs], pop, design.k_spread, design.shrink)
            ids.append(keep)
            pred.append(model.probabilities(normalise(data.x[keep], stats)).argmax(1))
        out["ref2"] = (np.concatenate(ids), np.concatenate(pred))
    # balanced sessions: location from the session, the uncalibrated posteriors for the neutral anchor's shift
    ids, pred = [], []
    for s in np.unique(data.speaker[rows]):
        srows = rows[data.speaker[rows] == s]
        probs = _plain_probs(data, srows, plain_oof)
        stats = session_stats(
            data.x[srows], probs, pop, anchor=design.anchor, k_spread=design.k_spread, shrink=design.shrink
        )
        ids.append(srows)
        pred.append(model.probabilities(normalise(data.x[srows], stats)).argmax(1))
    out["session"] = (np.concatenate(ids), np.concatenate(pred))
    return out


def _plain_probs(data: Data, rows: np.ndarray, plain_oof: dict | None) -> np.ndarray | None:
    """The uncalibrated model's inner out-of-fold probabilities for ``rows`` (all of one inner held-out fold)."""
    if plain_oof is None:
        return None
    for held, model in plain_oof["models"]:
        if np.isin(data.speaker[rows], held).all():
            return model.probabilities(data.x[rows])
    raise ValueError("rows not held out by one inner fold of the uncalibrated model")


def _objective(data: Data, parts: list[dict], anchor: str) -> float:
    if anchor == "none":
        rows = np.concatenate([p["rows"] for p in parts])
        return per_corpus_uar(data, rows, np.concatenate([p["pred"] for p in parts]))
    values = []
    for mode in ("ref2", "session") if anchor == "neutral" else ("session",):
        rows = np.concatenate([p[mode][0] for p in parts])
        values.append(per_corpus_uar(data, rows, np.concatenate([p[mode][1] for p in parts])))
    return float(np.mean(values))


def select_rule(data: Data, adapted_sel: dict, plain_oof: dict, design: Design, rules: list[SessionRule], *,
                share: float, seed: int) -> tuple[dict, list]:  # fmt: skip
    """Choose the session rule on the inner folds: the best mean of balanced- and dominated-session
    UAR (per corpus, then averaged) among the rules whose dominated sessions are not below the
    uncalibrated model's, ``"strict"``: on every corpus, ``"mean"``: on the corpora's average;
    the rule with the best such margin when none is. Returns ``({"strict": rule, "mean": rule}, scores)``."""
    results = {}
    for i, rule in enumerate(rules):
        per_corpus = {}
        for held, model, pop in adapted_sel["fitted"]:
            rows = data.rows(held, originals_only=True)
            plain = next(m for h, m in plain_oof["models"] if h == held)
            rng = np.random.default_rng(seed)
            for name in np.unique(data.corpus[rows]):
                crows = rows[data.corpus[rows] == name]
                bal = score_sessions(data, balanced_sessions(data, crows), plain, model, pop, design, rule)
                dom = score_sessions(data, dominated_sessions(data, crows, share, rng), plain, model, pop, design, rule)
                per_corpus.setdefault(name, []).append((bal, dom))
        summary = {name: {"balanced": np.mean([b["adapted"] for b, _ in v]),
                          "dominated": np.mean([d["adapted"] for _, d in v]),
                          "dominated_uncalibrated": np.mean([d["uncalibrated"] for _, d in v])}
                   for name, v in per_corpus.items()}  # fmt: skip
        margins = [s["dominated"] - s["dominated_uncalibrated"] for s in summary.values()]
        value = float(np.mean([(s["balanced"] + s["dominated"]) / 2 for s in summary.values()]))
        results[i] = {"value": value, "margin": float(min(margins)), "mean_margin": float(np.mean(margins))}
        log.info("rule %s: %.4f margin=%.4f", rule, value, min(margins))

    def best_of(key: str) -> SessionRule:
        safe = [i for i in results if results[i][key] >= 0]
        pick = max(safe, key=lambda i: results[i]["value"]) if safe else max(results, key=lambda i: results[i][key])
        return rules[pick]

    chosen = {"strict": best_of("margin"), "mean": best_of("mean_margin")}
    return chosen, [
        {"rule": _rule_name(rules[i]), **{k: round(v, 4) for k, v in r.items()}} for i, r in results.items()
    ]


def _rule_name(rule: SessionRule) -> str:
    default = SessionRule()
    return (
        ", ".join(
            f"{k}={getattr(rule, k)}" for k in rule.__dataclass_fields__ if getattr(rule, k) != getattr(default, k)
        )
        or "mean"
    )
