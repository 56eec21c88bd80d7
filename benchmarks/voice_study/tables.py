"""Markdown tables from benchmarks/voice_study/results/*.json (``python -m voice_study.run tables`` prints them all).

PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.tables [results/nested.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"

SESSION_RULES = ("chosen", "chosen_mean", "loco_strict", "loco_mean", "loco_strict_min16", "no_guard", "legacy_guard")


def _pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def _columns(splits: dict) -> list[tuple[str, list[str]]]:
    cols = []
    folds = [k for k in splits if k.startswith("ravdess_fold")]
    if folds:
        cols.append(("RAVDESS 5-fold", folds))
    for name in ("loco_ravdess", "loco_emodb", "loco_nemo"):
        if name in splits:
            cols.append((f"LOCO {name[5:]}", [name]))
    return cols


def _get(split: dict, path: tuple):
    v = split
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v


def _cell(splits: dict, keys: list[str], path: tuple, worst: bool = False) -> str:
    values = [_get(splits[k], path) for k in keys]
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = float(np.mean(values))
    return f"{_pct(mean)} (worst {_pct(min(values))})" if worst and len(values) > 1 else _pct(mean)


def main_table(result: dict) -> str:
    """Every evaluation, fold means (RAVDESS) and LOCO, for each design."""
    splits = result["splits"]
    cols = _columns(splits)
    designs = [d for d in next(iter(splits.values())) if isinstance(next(iter(splits.values()))[d], dict)
               and d not in ("chosen",)]  # fmt: skip
    lines = ["| evaluation | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]

    def row(label, path, worst=True):
        lines.append(f"| {label} | " + " | ".join(_cell(splits, keys, path, worst) for _, keys in cols) + " |")

    row("uncalibrated (all clips)", ("uncalibrated",))
    if any("uncalibrated_ravdess_only" in s for s in splits.values()):
        row("uncalibrated, trained on RAVDESS only", ("uncalibrated_ravdess_only",))
    for d in designs:
        for n in (1, 2, 4):
            if _get(next(iter(splits.values())), (d, f"ref{n}")) is not None:
                row(f"{d}: reference, {n} clip{'s' if n > 1 else ''}", (d, f"ref{n}"))
        for rule in SESSION_RULES:
            key = f"session[{rule}]"
            if _get(next(iter(splits.values())), (d, key)) is None:
                continue
            row(f"{d}: same-speaker balanced [{rule}]", (d, key, "balanced"))
            if rule in ("chosen", "loco_strict"):
                row("&nbsp;&nbsp;uncalibrated on the same clips", (d, key, "balanced_uncal"))
            row(f"{d}: same-speaker dominated [{rule}]", (d, key, "dominated"))
            if rule in ("chosen", "loco_strict"):
                row("&nbsp;&nbsp;uncalibrated on the same clips", (d, key, "dominated_uncal"))
    return "\n".join(lines)


def declined_table(result: dict) -> str:
    splits = result["splits"]
    cols = _columns(splits)
    designs = [d for d, v in next(iter(splits.values())).items() if isinstance(v, dict) and d != "chosen"]
    lines = ["| design, rule | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for d in designs:
        for rule in SESSION_RULES:
            key = f"session[{rule}]"
            if _get(next(iter(splits.values())), (d, key)) is None:
                continue
            cells = []
            for _, keys in cols:
                dec = sum(_get(splits[k], (d, key, "declined_dominated")) or 0 for k in keys)
                tot = sum(_get(splits[k], (d, key, "dominated_sessions")) or 0 for k in keys)
                bal = sum(_get(splits[k], (d, key, "declined_balanced")) or 0 for k in keys)
                cells.append(f"{dec}/{tot} dominated, {bal} balanced")
            lines.append(f"| {d} [{rule}] | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chosen_table(result: dict) -> str:
    splits = result["splits"]
    lines = [
        "| split | model | class balance | corpus exponent alpha | C | spread k | session rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in splits.items():
        for model, c in s.get("chosen", {}).items():
            rule = c.get("rule")
            if isinstance(rule, dict):
                default = {"location": "mean", "k_spread": "inf", "k_mean": 0.0, "diversity": False, "guard_share": 1.01,
                           "min_clips": 2, "iterations": 0, "correction": 1.0, "spread_guard": "-inf"}  # fmt: skip
                rule = (
                    ", ".join(f"{k}={v}" for k, v in rule.items() if str(v) != str(default.get(k))) or "mean, no guard"
                )
            lines.append(
                f"| {name} | {model} | {c.get('balance', '–')} | {c.get('alpha', '–')} | {c.get('c', '–')} | {c.get('k_spread', '–')} | {rule or '–'} |"
            )
    return "\n".join(lines)


def curve_table(result: dict, design: str, prefix: str = "ravdess_fold", rule: str = "chosen") -> str:
    """Session-size curve averaged over the splits whose name starts with ``prefix`` (RAVDESS folds: held-out actors)."""
    splits = {k: v for k, v in result["splits"].items() if k.startswith(prefix) and "curve" in v.get(design, {})}
    if not splits:
        return "(no curve)"
    first = next(iter(splits.values()))[design]["curve"]
    lines = [f"| draw | clips | speech seconds | uncalibrated | adapted, {rule} rule | adapted, no guard | gain ({rule}) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for key in first:
        kind, n = key.split("_")
        vals = {
            m: np.mean([s[design]["curve"][key][m] for s in splits.values()])
            for m in ("uncalibrated", rule, "no_guard")
        }
        secs = np.mean([s[design]["curve"][key]["seconds"] or np.nan for s in splits.values()])
        lines.append(f"| {kind} | {n} | {secs:.1f} | {_pct(vals['uncalibrated'])} | {_pct(vals[rule])} | "
                     f"{_pct(vals['no_guard'])} | {100 * (vals[rule] - vals['uncalibrated']):+.1f} |")  # fmt: skip
    return "\n".join(lines)


COMPACT_RULES = ("mean", "mean_own_spread", "guard0.5", "corr0", "partial_k8", "median")


def screen_table(result: dict, compact: bool = False) -> str:
    splits = result["splits"]
    cols = _columns(splits)
    lines = ["| design | serving | " + " | ".join(c for c, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    lines.append("| uncalibrated | – | " + " | ".join(_cell(splits, k, ("uncalibrated",)) for _, k in cols) + " |")
    first = next(iter(splits.values()))
    for d, v in first.items():
        if not isinstance(v, dict):
            continue
        for m in v:
            if m.startswith("ref"):
                lines.append(
                    f"| {d} | reference {m[3:]} | " + " | ".join(_cell(splits, k, (d, m)) for _, k in cols) + " |"
                )
            elif m.startswith("session[") and (not compact or m[8:-1] in COMPACT_RULES):
                for kind in ("balanced", "dominated"):
                    lines.append(
                        f"| {d} | {m[8:-1]}, {kind} | "
                        + " | ".join(_cell(splits, k, (d, m, kind)) for _, k in cols)
                        + " |"
                    )
    lines.append("| (uncalibrated on the dominated clips) | | " + " | ".join(
        _cell(splits, k, (d, m, "dominated_uncal")) for _, k in cols) + " |")  # fmt: skip
    return "\n".join(lines)


def main(paths: list[str] | None = None) -> None:
    args = sys.argv[1:] if paths is None else paths
    compact = "--compact" in args
    paths = [a for a in args if a != "--compact"] or sorted(
        str(p) for p in RESULTS.glob("*.json") if p.name != "speech_seconds.json"
    )
    for p in paths:
        result = json.loads(Path(p).read_text())
        print(f"\n## {Path(p).name}\n\n{result.get('protocol', '')}\n")
        if Path(p).name.startswith("screen"):
            print(screen_table(result, compact))
        elif Path(p).name.startswith(("nested", "rules-loco")):
            print(main_table(result), "\n")
            print(declined_table(result), "\n")
            print(chosen_table(result), "\n")
            loco = Path(p).name.startswith("rules-loco")
            for d in ("session", "one_model"):
                for prefix in (
                    ("ravdess_fold", "loco_ravdess", "loco_emodb", "loco_nemo") if loco else ("ravdess_fold",)
                ):
                    print(f"\nSession-size curve, {d}, {prefix}:\n")
                    print(curve_table(result, d, prefix, "loco_strict" if loco else "chosen"))
        elif Path(p).name.startswith("variants"):
            first = next(iter(result["splits"].values()))
            for variant in first:
                print(f"\n### {variant}\n")
                print(main_table({"splits": {k: v[variant] for k, v in result["splits"].items()}}))
            main_variant = {"splits": {k: v[next(iter(first))] for k, v in result["splits"].items()}}
            for d in ("session", "one_model"):
                for loco in ("loco_ravdess", "loco_emodb", "loco_nemo"):
                    print(f"\nSession-size curve, {d}, {loco}:\n")
                    print(curve_table(main_variant, d, loco))
        elif Path(p).name.startswith("cost"):
            print("\n".join(f"- {k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
