"""Check that a speed change left the verdicts alone: ``predict --json`` over real and generated
speech, compared line by line with the lines of another checkout.

    python benchmarks/check_outputs.py OUT.jsonl [--against BASE.jsonl] [--repo DIR] [--data DIR]

Scores about 200 RAVDESS files (every sixth of the corpus; skipped when missing) and 200 generated
2-3 s clips at 44.1 kHz (as :func:`bench.bench_folder` makes them) with ``--jobs 2``, writes the
lines to OUT.jsonl, and with ``--against`` reports the largest probability difference and every
verdict or error that differs. Exit status 1 when a verdict differs or a probability moves by more
than ``--tolerance``. ``--repo`` runs another checkout's code (run this script from each, or point
``--repo`` at a base checkout to make the reference).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import RATE_IN, speech_like, write_wav  # noqa: E402

N_GENERATED = 200
RAVDESS_STEP = 6  # every sixth file: 200 of RAVDESS's 1,200


def inputs(data: Path, folder: Path) -> list[str]:
    """The RAVDESS sample and the generated clips (written into ``folder``), in a fixed order."""
    real = sorted(str(p) for p in data.rglob("*") if p.suffix.lower() in (".wav", ".flac"))[::RAVDESS_STEP]
    rng = np.random.default_rng(3)
    for i in range(N_GENERATED):
        write_wav(folder / f"clip{i:04d}.wav", speech_like(rng.uniform(2.0, 3.0), RATE_IN, seed=10 + i), RATE_IN)
    return real + sorted(str(p) for p in folder.iterdir())


def score(repo: Path, paths: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    cmd = [sys.executable, "-m", "ser_core", "predict", "--json", "--jobs", "2", *paths]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env=env, check=False)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    if len(rows) != len(paths):
        sys.exit(f"predict gave {len(rows)} lines for {len(paths)} files: {out.stderr[-500:]}")
    return rows


def compare(new: list[dict], old: list[dict], tolerance: float) -> bool:
    """Print the differences; ``True`` when the verdicts agree and probabilities within ``tolerance``."""
    worst, differing = 0.0, []
    for a, b in zip(new, old, strict=True):
        key = Path(a["path"]).name
        if ("error" in a) != ("error" in b) or a.get("error") != b.get("error") or a.get("emotion") != b.get("emotion"):
            differing.append(f"{key}: {b.get('emotion') or b.get('error')} -> {a.get('emotion') or a.get('error')}")
            continue
        if "error" not in a:
            gap = max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in b["probabilities"])
            worst = max(worst, gap, abs(a["confidence"] - b["confidence"]))
    errors = sum("error" in a for a in new)
    print(f"{len(new)} files ({errors} errors in both), verdicts differing: {len(differing)}, "
          f"largest probability difference: {worst:.2e}")  # fmt: skip
    for line in differing[:20]:
        print("  " + line)
    return not differing and worst <= tolerance


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("out", type=Path, help="where to write this checkout's lines (JSON Lines)")
    parser.add_argument("--against", type=Path, help="lines of another checkout to compare with")
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose code scores the files")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "ravdess-speech-16k")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest probability difference accepted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ser-check-") as tmp:
        paths = inputs(args.data, Path(tmp))
        rows = score(args.repo.resolve(), paths)
    for row in rows:  # generated clips live in a temporary folder: compare them by name
        row["path"] = row["path"] if row["path"].startswith(str(args.data)) else Path(row["path"]).name
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.against is None:
        print(f"{len(rows)} lines written to {args.out}")
        return 0
    old = [json.loads(line) for line in args.against.read_text().splitlines()]
    return 0 if compare(rows, old, args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
