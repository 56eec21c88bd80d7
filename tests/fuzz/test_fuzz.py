"""A short fuzzing run of the decoder, in a subprocess so a crash or a hang fails cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_decoder_survives_mutated_audio():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_decoder.py"), "400"], capture_output=True, text=True, timeout=240, env=env
    )
    assert proc.returncode == 0, (
        f"fuzzing failed or crashed (code {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    outcomes = json.loads(proc.stdout.splitlines()[-1])
    decoded = outcomes.get("decoded", 0) + outcomes.get("decoded, no speech", 0)
    assert decoded >= 20 and sum(outcomes.values()) - decoded >= 20, outcomes  # both paths were exercised
