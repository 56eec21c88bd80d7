"""What the intensity model adds to a verdict: the same classifier with and without its
intensity heads, measured back to back in alternating rounds (the machine is shared, so the
rounds give a range, not one number).

    .venv/bin/python benchmarks/bench_intensity.py [--artifacts DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse

from bench import RATE_IN, median_ms, speech_like, warm_clip  # the speed benchmark's timer and signals

from ser_core import EmotionClassifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", default=None, help="bundle folder (default: the shipped artifacts)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    clf = EmotionClassifier.load(args.artifacts, jobs=1)
    heads = clf.intensity
    if heads is None:
        raise SystemExit("This bundle has no intensity model; rebuild it with train.py.")
    clip = warm_clip()
    recording = speech_like(3.0, RATE_IN, seed=2)
    cases = {
        "one clip (predictions)": (lambda: clf.predictions(clip), 300),
        "3 s recording at 44.1 kHz (predict)": (lambda: clf.predict(recording, RATE_IN), 60),
    }
    features = clf.extractor(clip[None])
    probs = clf.classify_features(features)
    heads_ms = [median_ms(lambda: heads.strength(features, probs, clf.labels), repeat=2000) for _ in range(args.rounds)]
    print(f"the heads alone, one clip: {min(heads_ms):.4f}-{max(heads_ms):.4f} ms ({args.rounds} rounds)")
    for name, (fn, repeat) in cases.items():
        without, with_ = [], []
        for _ in range(args.rounds):
            clf.intensity = None
            without.append(median_ms(fn, repeat=repeat))
            clf.intensity = heads
            with_.append(median_ms(fn, repeat=repeat))
        added = [b - a for a, b in zip(without, with_, strict=True)]
        print(
            f"{name}: without {min(without):.3f}-{max(without):.3f} ms, with {min(with_):.3f}-{max(with_):.3f} ms, "
            f"added per round {min(added):+.3f} to {max(added):+.3f} ms (medians of {repeat} calls, {args.rounds} rounds)"
        )


if __name__ == "__main__":
    main()
