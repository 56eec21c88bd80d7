"""Does the order of a program's imports change the speed of a verdict? The same script, importing
NumPy before or after ser_core, times ``predict`` on RAVDESS files (median ms a clip), each in a
fresh process with no thread variable set, as a user's program starts.

    .venv/bin/python benchmarks/bench_import_order.py [--repo DIR] [--clips 120] [--rounds 3]

``--repo`` measures another checkout's code the same way (for a before and after).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "ravdess-speech-16k"

SCRIPT = """
import sys, time
{first}
{second}
from pathlib import Path
paths = sorted(Path(sys.argv[1]).rglob("*.flac"))[:: max(1, 1200 // int(sys.argv[2]))][: int(sys.argv[2])]
clf = ser_core.EmotionClassifier.load(jobs=1)
clf.predict(str(paths[0]))
times = []
for path in paths:
    start = time.perf_counter()
    clf.predict(str(path))
    times.append(time.perf_counter() - start)
times.sort()
print(f"{{1e3 * times[len(times) // 2]:.2f}}")
"""
ORDERS = {
    "numpy first": ("import numpy", "import ser_core"),
    "ser_core first": ("import ser_core", "import numpy"),
}


def measure(repo: Path, order: str, clips: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(repo)
    first, second = ORDERS[order]
    code = SCRIPT.format(first=first, second=second)
    out = subprocess.run(
        [sys.executable, "-c", code, str(DATA), str(clips)], capture_output=True, text=True, env=env, cwd=repo
    )
    if out.returncode:
        sys.exit(out.stderr[-800:])
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose code is measured")
    parser.add_argument("--clips", type=int, default=120, help="RAVDESS files judged in each process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per order, alternating")
    args = parser.parse_args()
    results: dict[str, list[float]] = {order: [] for order in ORDERS}
    for _ in range(args.rounds):
        for order in ORDERS:
            results[order].append(measure(args.repo.resolve(), order, args.clips))
    for order, values in results.items():
        print(f"{order:>15}: median ms a clip per process {', '.join(f'{v:.2f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
