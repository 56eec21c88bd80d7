"""Regenerate the study's tables from the cached features.

    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run screen            # design screen (outer folds: optimistic)
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run nested            # the full nested protocol (augmented)
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run nested --corpora ravdess emodb   # without nEMO
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run variants          # augmentation variants at the chosen hyper-parameters
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run rules-loco --aug-stats copy   # session rules on inner LOCO folds
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run tables            # markdown tables from results/*.json
    PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.run cost              # serving cost of adaptation

Results go to benchmarks/voice_study/results/<command>[-<corpora>].json; logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one BLAS thread per worker: the folds run in parallel
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .protocol import (  # noqa: E402
    INF,
    Data,
    Design,
    Grid,
    SessionRule,
    balanced_sessions,
    dominated_sessions,
    fit_design,
    random_sessions,
    score_references,
    score_sessions,
    select,
    select_rule,
    uar,
)

RESULTS = Path(__file__).parent / "results"
SEED = 42
SHARE = 0.8  # dominated sessions: this share of one emotion
REFS = (1, 2, 4)
SIZES = (2, 3, 4, 6, 8, 12, 16, 24)
MIN_SESSION_CLIPS = 16  # recommended from the session-size curves of rules-loco (read on outer folds)
log = logging.getLogger("study")


def load_data(corpora) -> Data:
    from .extract import load_tables

    seconds_file = RESULTS / "speech_seconds.json"
    seconds = json.loads(seconds_file.read_text()) if seconds_file.exists() else None
    return Data.from_tables(load_tables(tuple(corpora)), seconds)


def splits(data: Data, corpora, folds: int = 5):
    """``(name, train_speakers, test_rows)``: RAVDESS k-fold by actor (other corpora in training), then LOCO."""
    from ser_core.training.fit import actor_folds

    ravdess = data.speakers_of(["ravdess"])
    others = [s for s in data.speakers_of(corpora) if s not in ravdess]
    for i, test in enumerate(actor_folds(ravdess, folds)):
        train = [s for s in ravdess if s not in test] + others
        yield f"ravdess_fold{i + 1}", train, data.rows(test, originals_only=True)
    if len(corpora) > 1:
        for held in corpora:
            train = [s for s in data.speakers_of(corpora) if s not in data.speakers_of([held])]
            known = np.unique(data.y[data.rows(train, originals_only=True)])
            rows = data.rows(data.speakers_of([held]), originals_only=True)
            yield f"loco_{held}", train, rows[np.isin(data.y[rows], known)]


def score_split(data: Data, test_rows, plain, adapted: dict, *, seed: int, curve: bool = False) -> dict:
    """Every evaluation of one split. ``adapted``: name -> (design, model, pop, rule)."""
    rng = np.random.default_rng(seed)
    out = {
        "uncalibrated": uar(data.y[test_rows], plain.probabilities(data.x[test_rows]).argmax(1)),
        "n": int(len(test_rows)),
    }
    bal = balanced_sessions(data, test_rows)
    dom = dominated_sessions(data, test_rows, SHARE, np.random.default_rng(seed))
    for name, (design, model, pop, rules) in adapted.items():
        res = {}
        if design.anchor == "neutral":
            for n in REFS:
                res[f"ref{n}"] = score_references(data, test_rows, model, pop, design, n, 5, rng)["uar"]
        for rule_name, rule in rules.items():
            b = score_sessions(data, bal, plain, model, pop, design, rule)
            d = score_sessions(data, dom, plain, model, pop, design, rule)
            res[f"session[{rule_name}]"] = {"balanced": b["adapted"], "balanced_uncal": b["uncalibrated"],
                                            "dominated": d["adapted"], "dominated_uncal": d["uncalibrated"],
                                            "declined_balanced": b["declined"], "declined_dominated": d["declined"],
                                            "dominated_sessions": d["sessions"]}  # fmt: skip
        if curve:
            res["curve"] = session_curve(data, test_rows, plain, model, pop, design, rules, seed)
        out[name] = res
    return out


def session_curve(data, test_rows, plain, model, pop, design, rules, seed, draws: int = 20) -> dict:
    """UAR of adapted vs uncalibrated verdicts by session size, balanced and dominated random draws."""
    out = {}
    for kind in ("balanced", "dominated"):
        for n in SIZES:
            sessions = random_sessions(data, test_rows, n, draws, kind == "dominated", SHARE,
                                       np.random.default_rng([seed, n]))  # fmt: skip
            secs = float(np.nanmean([data.seconds[s].sum() for s in sessions])) if data.seconds is not None else None
            row = {"seconds": secs}
            for rule_name, rule in rules.items():
                r = score_sessions(data, sessions, plain, model, pop, design, rule)
                row[rule_name] = r["adapted"]
                row["uncalibrated"] = r["uncalibrated"]
            out[f"{kind}_{n}"] = row
    return out


# ---------------------------------------------------------------- screen


SCREEN_DESIGNS = {
    "session_own_spread": Design(anchor="session", k_spread=0.0, augment=False),
    "session_mean_only": Design(anchor="session", k_spread=INF, augment=False),
    "neutral_refs124_mean_only": Design(anchor="neutral", k_spread=INF, augment=False),
    "neutral_refs124_k4": Design(anchor="neutral", k_spread=4.0, augment=False),
    "neutral_refs124_k1": Design(anchor="neutral", k_spread=1.0, augment=False),
    "neutral_allrefs_mean_only": Design(anchor="neutral", k_spread=INF, train_refs=(0,), augment=False),
    "neutral_mix_half_session": Design(anchor="neutral", k_spread=INF, session_share=0.5, augment=False),
    "session_own_spread_eb": Design(anchor="session", k_spread=0.0, shrink=1.0, augment=False),
    "neutral_refs124_eb": Design(anchor="neutral", k_spread=INF, shrink=1.0, augment=False),
    "neutral_refs124_eb3": Design(anchor="neutral", k_spread=INF, shrink=3.0, augment=False),
    "neutral_mix_half_session_eb": Design(anchor="neutral", k_spread=INF, shrink=1.0, session_share=0.5, augment=False),
    "neutral_all_session_eb": Design(anchor="neutral", k_spread=INF, shrink=1.0, session_share=1.0, augment=False),
    "neutral_all_session_own_spread": Design(
        anchor="neutral", k_spread=0.0, shrink=1.0, session_share=1.0, augment=False
    ),
}
SCREEN_RULES = {
    "mean": SessionRule(),
    "mean_own_spread": SessionRule(k_spread=0.0),
    "median": SessionRule(location="median"),
    "trimmed": SessionRule(location="trimmed"),
    "guard0.5": SessionRule(guard_share=0.5),
    "partial_k8": SessionRule(k_mean=8.0),
    "diversity": SessionRule(diversity=True),
    "iter1": SessionRule(iterations=1),
    "iter2": SessionRule(iterations=2),
    "iter1_guard0.5": SessionRule(iterations=1, guard_share=0.5),
    "corr0.5": SessionRule(correction=0.5),
    "corr0": SessionRule(correction=0.0),
    "corr0.5_guard0.7": SessionRule(correction=0.5, guard_share=0.7),
}


def _screen_split(data, name, train, test_rows, designs, c, alpha):
    plain, _ = fit_design(data, train, Design(anchor="none", augment=False), c, alpha, seed=SEED)
    adapted = {}
    for dname, design in designs.items():
        model, pop = fit_design(data, train, design, c, alpha, seed=SEED)
        adapted[dname] = (design, model, pop, SCREEN_RULES)
    log.info("screen %s done", name)
    return name, score_split(data, test_rows, plain, adapted, seed=SEED)


def screen(args) -> dict:
    from joblib import Parallel, delayed

    data = load_data(args.corpora)
    designs = {k: v for k, v in SCREEN_DESIGNS.items() if not args.screen_designs or k in args.screen_designs}
    jobs = [
        delayed(_screen_split)(data, n, tr, te, designs, args.c, args.alpha) for n, tr, te in splits(data, args.corpora)
    ]
    results = dict(Parallel(n_jobs=args.jobs)(jobs))
    return {"protocol": "screen: outer folds, no augmentation, fixed C and alpha (OPTIMISTIC: designs compared on the outer folds)",
            "c": args.c, "alpha": args.alpha, "splits": results}  # fmt: skip


# ---------------------------------------------------------------- nested


def nested_rules(anchor: str) -> list[SessionRule]:
    """The session rules chosen among on inner folds (per anchor): location estimate, partial
    adaptation, and two guards (the uncalibrated verdicts' dominant share; the session's spread)."""
    rules = []
    variants = ([{"correction": 1.0}, {"correction": 0.5}] if anchor == "neutral"
                else [{"k_spread": 4.0}, {"k_spread": 4.0, "k_mean": 16.0}])  # fmt: skip
    for v in variants:
        for guard in (0.35, 0.5, 0.7, 1.01):
            for spread_guard in (-INF, -0.25, -0.2, -0.15):
                rules.append(SessionRule(guard_share=guard, spread_guard=spread_guard, **v))
    return rules


# The recommendation of REPORT.md (section 1.1): the model, its fit, and its same-speaker rule.
RECOMMENDED_DESIGN = Design(anchor="neutral", session_share=0.5, shrink=1.0, k_spread=4.0, aug_stats="copy")
RECOMMENDED_FIT = {"c": 0.003, "alpha": 1.0}  # class balance "pooled" (tied with "corpus" on the inner folds)
RECOMMENDED_RULE = SessionRule(
    correction=0.5, min_clips=MIN_SESSION_CLIPS
)  # no verdict-share guard; k_spread inf: sigma_pop

NESTED_DESIGNS = {  # shrink 1 (empirical Bayes) was set from the screen
    "one_model": Design(
        anchor="neutral", session_share=0.5, shrink=1.0
    ),  # neutral anchor, refs and sessions in training
    "session": Design(anchor="session", k_spread=0.0, shrink=1.0),  # second model of the two-model option
    "reference": Design(anchor="neutral", session_share=0.0, shrink=1.0),  # first model of the two-model option
}


def _nested_split(data, name, train, test_rows, args):
    t0 = time.time()
    grid = Grid(
        c=tuple(args.c_grid),
        alpha=tuple(args.alpha_grid),
        balance=tuple(args.balance_grid),
        k_spread=tuple(args.k_grid),
        folds=args.inner_folds,
    )
    chosen = {}
    plain_design = Design(anchor="none", augment=not args.no_augment)
    plain_sel = select(data, train, plain_design, grid, seed=SEED)
    chosen["uncalibrated"] = {k: plain_sel[k] for k in ("c", "alpha", "balance", "inner_scores")}
    plain_design = replace(plain_design, balance=plain_sel["balance"])
    plain, _ = fit_design(data, train, plain_design, plain_sel["c"], plain_sel["alpha"], seed=SEED)
    adapted = {}
    for dname in args.designs:
        design = replace(NESTED_DESIGNS[dname], augment=not args.no_augment, aug_stats=args.aug_stats)
        sel = select(data, train, design, grid, seed=SEED, plain_oof=plain_sel["plain"])
        design = replace(design, k_spread=sel["k_spread"], balance=sel["balance"])
        picks, rule_scores = select_rule(
            data, sel, plain_sel["plain"], design, nested_rules(design.anchor), share=SHARE, seed=SEED
        )
        rule = picks["strict"]
        model, pop = fit_design(data, train, design, sel["c"], sel["alpha"], seed=SEED)
        chosen[dname] = {"c": sel["c"], "alpha": sel["alpha"], "balance": sel["balance"], "k_spread": sel["k_spread"], "rule": asdict(rule), "rule_mean": asdict(picks["mean"]),
                         "inner_scores": sel["inner_scores"], "rule_scores": rule_scores}  # fmt: skip
        rules = {"chosen": rule, "chosen_mean": picks["mean"], "no_guard": replace(rule, guard_share=1.01, spread_guard=-INF),
                 "legacy_guard": replace(rule, guard_share=0.5, min_clips=8)}  # fmt: skip
        adapted[dname] = (design, model, pop, rules)
        log.info("%s %s chosen %s", name, dname, chosen[dname]["rule"])
    result = score_split(data, test_rows, plain, adapted, seed=SEED, curve=name.startswith("ravdess") or args.curve_all)
    result["chosen"] = chosen
    if args.ravdess_only_plain and name != "loco_ravdess":  # item 4: the uncalibrated model trained on RAVDESS alone
        rav = [s for s in train if s in data.speakers_of(["ravdess"])]
        rsel = select(data, rav, plain_design, replace(grid, alpha=(0.0,), balance=("pooled",)), seed=SEED)
        rplain, _ = fit_design(data, rav, plain_design, rsel["c"], 0.0, seed=SEED)
        result["uncalibrated_ravdess_only"] = uar(data.y[test_rows], rplain.probabilities(data.x[test_rows]).argmax(1))
        result["chosen"]["uncalibrated_ravdess_only"] = {"c": rsel["c"]}
    result["seconds"] = round(time.time() - t0)
    log.info("nested %s done in %.0f s", name, time.time() - t0)
    return name, result


def nested(args) -> dict:
    from joblib import Parallel, delayed

    data = load_data(args.corpora)
    todo = [s for s in splits(data, args.corpora) if not args.only or s[0] in args.only]
    results = dict(Parallel(n_jobs=args.jobs)(delayed(_nested_split)(data, n, tr, te, args) for n, tr, te in todo))
    return {"protocol": "nested: hyper-parameters on inner speaker folds of the training speakers (original rows); "
            "final fits on augmented rows; test speakers never in training", "args": vars(args), "splits": results}  # fmt: skip


# ---------------------------------------------------------------- training-row variants at the chosen hyper-parameters


def _variant_split(data, name, train, test_rows, chosen, variants):
    """Refit the chosen designs with other training rows (hyper-parameters as chosen on the inner
    folds, which use original rows only, so the choice does not depend on these variants)."""
    pc = chosen["uncalibrated"]
    out = {}
    for vname, changes in variants.items():
        plain_design = Design(anchor="none", augment=changes.get("augment", True), balance=pc.get("balance", "pooled"))
        plain, _ = fit_design(data, train, plain_design, pc["c"], pc["alpha"], seed=SEED)
        adapted = {}
        for dname in ("one_model", "session", "reference"):
            if dname not in chosen:
                continue
            c = chosen[dname]
            design = replace(
                NESTED_DESIGNS[dname], k_spread=float(c["k_spread"]), balance=c.get("balance", "pooled"), **changes
            )
            model, pop = fit_design(data, train, design, c["c"], c["alpha"], seed=SEED)
            rules = {key: SessionRule(**{k: (float(v) if k in ("k_spread", "spread_guard") else v) for k, v in c[src].items()})
                     for key, src in (("chosen", "rule"), ("chosen_mean", "rule_mean"))}  # fmt: skip
            rules["no_guard"] = replace(rules["chosen"], guard_share=1.01, spread_guard=-INF)
            adapted[dname] = (design, model, pop, rules)
        first = vname == next(iter(variants))  # the main run's models: add the session-size curve on LOCO splits too
        out[vname] = score_split(data, test_rows, plain, adapted, seed=SEED, curve=first and name.startswith("loco"))
    log.info("variants %s done", name)
    return name, out


VARIANTS = {
    "augmented, statistics from original clips": {"aug_stats": "original"},
    "augmented, statistics from the same augmented copy": {"aug_stats": "copy"},
    "no augmentation": {"augment": False},
}


def variants(args) -> dict:
    from joblib import Parallel, delayed

    data = load_data(args.corpora)
    nested_result = json.loads((RESULTS / "nested.json").read_text())["splits"]
    todo = [s for s in splits(data, args.corpora) if s[0] in nested_result and (not args.only or s[0] in args.only)]
    results = dict(Parallel(n_jobs=args.jobs)(delayed(_variant_split)(data, n, tr, te, nested_result[n]["chosen"], VARIANTS)
                                              for n, tr, te in todo))  # fmt: skip
    return {
        "protocol": "training-row variants refitted at the hyper-parameters chosen on the inner folds of nested.json",
        "splits": results,
    }


# ---------------------------------------------------------------- session rules chosen on inner leave-one-corpus-out folds


def _rules_loco_split(data, name, train, test_rows, chosen, aug_stats):
    """The session rule chosen on inner LEAVE-ONE-CORPUS-OUT folds of the training speakers (each
    training corpus held out in turn, models fitted on the others at the hyper-parameters chosen
    in nested.json): the inner check then sees voices from a corpus it was not trained on, as
    serving does. Final models: augmented rows, statistics from ``aug_stats``."""
    corpora = sorted(set(data.corpus[data.rows(train)]))
    pc = chosen["uncalibrated"]
    plain_design = Design(anchor="none", balance=pc["balance"])
    folds = [[s for s in train if s in data.speakers_of([c])] for c in corpora] if len(corpora) > 1 else []
    plain_inner = {"models": []}
    for held in folds:
        rest = [s for s in train if s not in held]
        plain_inner["models"].append(
            (held, fit_design(data, rest, plain_design, pc["c"], pc["alpha"], seed=SEED, originals_only=True)[0])
        )
    plain, _ = fit_design(data, train, plain_design, pc["c"], pc["alpha"], seed=SEED)
    adapted, picked = {}, {}
    for dname in ("one_model", "session"):
        c = chosen[dname]
        design = replace(
            NESTED_DESIGNS[dname], k_spread=float(c["k_spread"]), balance=c["balance"], aug_stats=aug_stats
        )
        rules = {
            "chosen": SessionRule(
                **{k: (float(v) if k in ("k_spread", "spread_guard") else v) for k, v in c["rule"].items()}
            )
        }
        if folds:
            sel = {"fitted": []}
            for held in folds:
                rest = [s for s in train if s not in held]
                model, pop = fit_design(data, rest, design, c["c"], c["alpha"], seed=SEED, originals_only=True)
                sel["fitted"].append((held, model, pop))
            picks, scores = select_rule(
                data, sel, plain_inner, design, nested_rules(design.anchor), share=SHARE, seed=SEED
            )
            rules.update({"loco_strict": picks["strict"], "loco_mean": picks["mean"]})
            picked[dname] = {"strict": asdict(picks["strict"]), "mean": asdict(picks["mean"]), "scores": scores}
        rules["no_guard"] = replace(rules["chosen"], guard_share=1.01, spread_guard=-INF)
        if (
            "loco_strict" in rules
        ):  # the minimum session size read off the session-size curves (outer folds: optimistic)
            rules["loco_strict_min16"] = replace(rules["loco_strict"], min_clips=MIN_SESSION_CLIPS)
        model, pop = fit_design(data, train, design, c["c"], c["alpha"], seed=SEED)
        adapted[dname] = (design, model, pop, rules)
    result = score_split(data, test_rows, plain, adapted, seed=SEED, curve=True)
    result["chosen"] = picked
    log.info("rules-loco %s done", name)
    return name, result


def rules_loco(args) -> dict:
    from joblib import Parallel, delayed

    data = load_data(args.corpora)
    nested_result = json.loads((RESULTS / "nested.json").read_text())["splits"]
    todo = [s for s in splits(data, args.corpora) if s[0] in nested_result and (not args.only or s[0] in args.only)]
    results = dict(Parallel(n_jobs=args.jobs)(delayed(_rules_loco_split)(data, n, tr, te, nested_result[n]["chosen"], args.aug_stats)
                                              for n, tr, te in todo))  # fmt: skip
    return {
        "protocol": "session rules chosen on inner leave-one-corpus-out folds of the training speakers; other "
        f"hyper-parameters as chosen in nested.json; final fits augmented, statistics from {args.aug_stats}",
        "splits": results,
    }


# ---------------------------------------------------------------- cost


def cost(args) -> dict:
    """Wall time of an uncalibrated verdict vs an adapted one (statistics from a session or references)."""
    from .speaker_norm import normalise, reference_stats, session_stats

    data = load_data(["ravdess"])
    train = data.speakers_of(["ravdess"])[4:]
    plain, _ = fit_design(data, train, Design(anchor="none", augment=False), 0.03, 0.0, seed=SEED)
    model, pop = fit_design(data, train, Design(anchor="neutral", augment=False), 0.03, 0.0, seed=SEED)
    x = data.x[data.rows([1], originals_only=True)]
    out = {}

    def timeit(fn, reps=200):
        fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps * 1e3

    for n in (1, 8, 24):
        clips = x[:n]
        out[f"uncalibrated verdicts, {n} clips (ms)"] = timeit(lambda clips=clips: plain.probabilities(clips))
        out[f"session-adapted verdicts incl. statistics, {n} clips (ms)"] = timeit(
            lambda clips=clips: model.probabilities(normalise(clips, session_stats(clips, plain.probabilities(clips), pop,
                                                                        anchor="neutral", k_spread=INF))))  # fmt: skip
    refs = x[:2]
    out["reference statistics from 2 clips (ms, once per voice)"] = timeit(lambda: reference_stats(refs, pop, INF))
    stats = reference_stats(refs, pop, INF)
    out["reference-adapted verdict, 1 clip (ms)"] = timeit(lambda: model.probabilities(normalise(x[:1], stats)))
    return {k: round(v, 4) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["screen", "nested", "variants", "rules-loco", "cost", "tables"])
    parser.add_argument("--corpora", nargs="+", default=["ravdess", "emodb", "nemo"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--c", type=float, default=0.03, help="screen: fixed C")
    parser.add_argument("--designs", dest="screen_designs", nargs="*", help="screen: only these designs")
    parser.add_argument("--alpha", type=float, default=1.0, help="screen: fixed corpus exponent")
    parser.add_argument("--c-grid", type=float, nargs="+", default=[0.001, 0.003, 0.01])
    parser.add_argument("--alpha-grid", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--balance-grid", nargs="+", default=["pooled", "corpus"])
    parser.add_argument("--k-grid", type=float, nargs="+", default=[INF, 4.0])
    parser.add_argument("--inner-folds", type=int, default=3)
    parser.add_argument("--designs-nested", dest="designs", nargs="+", default=list(NESTED_DESIGNS))
    parser.add_argument("--aug-stats", choices=["original", "copy"], default="original")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument(
        "--ravdess-only-plain", action="store_true", help="also the uncalibrated model trained on RAVDESS alone"
    )
    parser.add_argument(
        "--curve-all", action="store_true", help="session-size curve on every split, not only RAVDESS folds"
    )
    parser.add_argument("--only", nargs="*", help="only these splits (e.g. ravdess_fold1 loco_emodb)")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "tables":
        from .tables import main as tables

        tables()
        return
    result = {"screen": screen, "nested": nested, "variants": variants, "rules-loco": rules_loco, "cost": cost}[
        args.command
    ](args)
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-" + "-".join(args.corpora) if args.corpora != ["ravdess", "emodb", "nemo"] else "") + (
        f"-{args.tag}" if args.tag else ""
    )
    path = RESULTS / f"{args.command}{suffix}.json"
    path.write_text(json.dumps(result, indent=1, default=_json))
    print(path)


def _json(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and o == INF:
        return "inf"
    return str(o)


if __name__ == "__main__":
    main()
