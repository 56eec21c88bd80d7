"""Seconds of trimmed speech per file (as the feature extractor trims it), for the session-size curve.

PYTHONPATH=.:benchmarks .venv/bin/python -m voice_study.durations   # writes benchmarks/voice_study/results/speech_seconds.json
"""

from __future__ import annotations

import json
from pathlib import Path

from joblib import Parallel, delayed

from ser_core import audio
from ser_core.training.fit import TrainConfig

from .extract import ROOTS, SCANNERS

OUT = Path(__file__).parent / "results" / "speech_seconds.json"


def _seconds(path: str) -> float:
    return len(audio.trim_silence(audio.decode(path))) / audio.SAMPLE_RATE


def main() -> None:
    out = {}
    for name in ROOTS:
        files = SCANNERS[name](ROOTS[name], TrainConfig().emotions)
        out[name] = Parallel(n_jobs=2)(delayed(_seconds)(str(f.path)) for f in files)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
