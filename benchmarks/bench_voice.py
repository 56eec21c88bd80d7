"""Speaker calibration's cost: a verdict with and without a voice, and building a Voice from 10 s
of speech (RAVDESS actor 01's neutral recordings).

    .venv/bin/python benchmarks/bench_voice.py
"""

from __future__ import annotations

import statistics

import numpy as np
from bench import REPO, median_ms  # the speed benchmark's timer and path set-up

from ser_core import EmotionClassifier, audio

ACTOR = REPO.parent / "shared" / "data" / "ravdess-speech-16k" / "Actor_01"


def main() -> None:
    clf = EmotionClassifier.load(jobs=1)
    files = sorted(ACTOR.glob("*.flac"))
    neutral = [f for f in files if f.name.startswith("03-01-01-")]
    ten = np.concatenate([audio.load(f) for f in neutral])[: 10 * audio.SAMPLE_RATE]
    voice = clf.calibrate(ten, audio.SAMPLE_RATE)
    clips = [audio.load(f) for f in files]
    plain = statistics.median(median_ms(lambda y=y: clf.predict(y, audio.SAMPLE_RATE), repeat=5) for y in clips)
    calibrated = statistics.median(
        median_ms(lambda y=y: clf.predict(y, audio.SAMPLE_RATE, voice=voice), repeat=5) for y in clips
    )
    build = median_ms(lambda: clf.calibrate(ten, audio.SAMPLE_RATE), repeat=30)
    print(
        f"verdict on a RAVDESS recording (median over {len(clips)}): {plain:.2f} ms not adapted, "
        f"{calibrated:.2f} ms adapted ({calibrated - plain:+.2f} ms)"
    )
    print(f"a Voice from 10 s of speech ({voice.describe()}): {build:.1f} ms (median of 30)")


if __name__ == "__main__":
    main()
