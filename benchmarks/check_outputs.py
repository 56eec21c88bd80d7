"""Check that a change left the outputs alone: verdicts, timelines, utterances and features,
compared with those of another checkout.

    python benchmarks/check_outputs.py OUT.jsonl [--against BASE.jsonl] [--repo DIR] [--data DIR] [--full]

Scores about 200 RAVDESS files (every sixth of the corpus; skipped when missing) and 200 generated
2-3 s clips at 44.1 kHz (as :func:`bench.bench_folder` makes them) with ``--jobs 2``, writes the
lines to OUT.jsonl, and with ``--against`` reports the largest probability difference and every
verdict or error that differs. Exit status 1 when a verdict differs or a probability moves by more
than ``--tolerance``. ``--repo`` runs another checkout's code (run this script from each, or point
``--repo`` at a base checkout to make the reference).

``--full`` scores every RAVDESS file instead of every sixth, and adds: the same files judged
relative to a reference voice (two neutral recordings of actor 01) and with ``--same-speaker``
(actor 02's folder); a 4-minute recording of RAVDESS sentences joined by pauses through
``timeline --json`` and ``timeline --segments --json`` (Silero and the energy rule); and both
feature sets (seed and rich) on 60 RAVDESS clips, one JSON line of rounded values a clip.
Everything goes through the command line and ``ser_core.features``, so two checkouts with
different module layouts are compared on what users see.
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
LONG_SENTENCES = 64  # RAVDESS sentences in the long recording (about 4 minutes with pauses)
FEATURE_CLIPS = 60  # RAVDESS clips whose features are compared


def inputs(data: Path, folder: Path, step: int = RAVDESS_STEP) -> list[str]:
    """The RAVDESS sample and the generated clips (written into ``folder``), in a fixed order."""
    real = sorted(str(p) for p in data.rglob("*") if p.suffix.lower() in (".wav", ".flac"))[::step]
    rng = np.random.default_rng(3)
    for i in range(N_GENERATED):
        write_wav(folder / f"clip{i:04d}.wav", speech_like(rng.uniform(2.0, 3.0), RATE_IN, seed=10 + i), RATE_IN)
    return real + sorted(str(p) for p in folder.iterdir() if p.name.startswith("clip"))


def _run(repo: Path, args: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=repo, env=env, check=False)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not rows:
        sys.exit(f"{' '.join(args[:4])} gave no JSON: {out.stderr[-500:]}")
    return rows


def score(repo: Path, paths: list[str], *extra: str) -> list[dict]:
    rows = _run(repo, ["-m", "ser_core", "predict", "--json", "--jobs", "2", *extra, *paths])
    if len(rows) != len(paths):
        sys.exit(f"predict gave {len(rows)} lines for {len(paths)} files")
    return rows


def long_recording(data: Path, path: Path) -> Path:
    """RAVDESS sentences of several actors joined by 0.3-1.5 s pauses, as one 16 kHz WAV."""
    import soundfile as sf

    files = sorted(p for p in data.rglob("*.flac"))[:: max(1, 1200 // LONG_SENTENCES)][:LONG_SENTENCES]
    rng = np.random.default_rng(7)
    parts = []
    for f in files:
        y, sr = sf.read(str(f), dtype="float32")
        parts += [y, np.zeros(int(rng.uniform(0.3, 1.5) * sr), np.float32)]
    sf.write(str(path), np.concatenate(parts), 16_000, subtype="PCM_16")
    return path


FEATURE_SCRIPT = """
import json, sys
import numpy as np
import soundfile as sf
from ser_core import audio
from ser_core.features import build_extractor
paths = sys.argv[1:]
clips = np.stack([audio.speech_clip(audio.load(p)) for p in paths])
for kind in ("seed", "rich"):
    values = build_extractor(kind)(clips)
    for p, row in zip(paths, values):
        print(json.dumps({"path": p, "features": kind, "values": [float(v) for v in row]}))
"""


def full_rows(repo: Path, data: Path, folder: Path) -> list[dict]:
    """What ``--full`` adds to the plain verdicts: adapted verdicts, a long timeline and its
    utterances, and both feature sets."""
    actor1, actor2 = sorted((data / "Actor_01").glob("*.flac")), str(data / "Actor_02")
    references = [str(p) for p in actor1 if p.name.startswith("03-01-01-")][:2]
    rows = [{**r, "mode": "reference"} for r in score(repo, [str(p) for p in actor1], "--reference", references[0],
                                                       "--reference", references[1])]  # fmt: skip
    rows += [{**r, "mode": "same-speaker"} for r in score(repo, sorted(str(p) for p in Path(actor2).glob("*.flac")),
                                                          "--same-speaker")]  # fmt: skip
    long = str(long_recording(data, folder / "long.wav"))
    for extra in ([], ["--segments"], ["--segments", "--detector", "energy"], ["--reference", references[0]]):
        (row,) = _run(repo, ["-m", "ser_core", "timeline", "--json", *extra, long])
        rows.append({**row, "path": "long.wav", "mode": " ".join(["timeline", *extra[:3]])})
    sample = sorted(str(p) for p in data.rglob("*.flac"))[:: 1200 // FEATURE_CLIPS][:FEATURE_CLIPS]
    rows += _run(repo, ["-c", FEATURE_SCRIPT, *sample])
    return rows


def _numbers(value: object, prefix: str = "") -> dict[str, float | str]:
    """Every leaf of a JSON value, keyed by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _numbers(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def compare(new: list[dict], old: list[dict], tolerance: float) -> bool:
    """Print the differences; ``True`` when every text field agrees and numbers are within ``tolerance``."""
    worst, differing = 0.0, []
    if len(new) != len(old):
        print(f"{len(new)} lines against {len(old)}")
        return False
    for a, b in zip(new, old, strict=True):
        key = f"{Path(a['path']).name} {a.get('mode') or a.get('features') or ''}".strip()
        left, right = _numbers(a), _numbers(b)
        if left.keys() != right.keys():
            differing.append(f"{key}: fields {sorted(left.keys() ^ right.keys())[:5]}")
            continue
        for field, value in right.items():
            other = left[field]
            if isinstance(value, float) and isinstance(other, float):
                worst = max(worst, abs(value - other))
            elif value != other:
                differing.append(f"{key}{field}: {value} -> {other}")
                break
    errors = sum("error" in a for a in new)
    print(f"{len(new)} lines ({errors} errors in both), differing: {len(differing)}, "
          f"largest numeric difference: {worst:.2e}")  # fmt: skip
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
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest numeric difference accepted")
    parser.add_argument(
        "--full", action="store_true", help="every RAVDESS file, adapted verdicts, utterances, features"
    )
    args = parser.parse_args()
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="ser-check-") as tmp:
        paths = inputs(args.data, Path(tmp), 1 if args.full else RAVDESS_STEP)
        rows = score(repo, paths)
        if args.full:
            rows += full_rows(repo, args.data, Path(tmp))
    for row in rows:  # generated files live in a temporary folder: compare them by name
        row["path"] = row["path"] if row["path"].startswith(str(args.data)) else Path(row["path"]).name
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.against is None:
        print(f"{len(rows)} lines written to {args.out}")
        return 0
    old = [json.loads(line) for line in args.against.read_text().splitlines()]
    return 0 if compare(rows, old, args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
