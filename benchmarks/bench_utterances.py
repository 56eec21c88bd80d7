"""How well each voice-activity detector finds utterances, and what segmenting costs.

RAVDESS sentences (one utterance each) are concatenated with known gaps of 0.3-1.5 s of
silence; each detector then segments the result (``ser_core.inference.utterances.utterances``, no padding)
and its boundaries are compared with the true ones, clean and with noise at 20 and 10 dB SNR.

True boundaries: the speech of a clean clip runs from the first to the last 25 ms frame
(10 ms hop) within ``REFERENCE_TOP_DB`` of its loudest frame, counting only runs of such
frames at least ``REFERENCE_MIN_RUN`` long (a click is not speech); each clip is cut to that
span before concatenation, so the splice points are the truth. Noise: white, pink (1/f) and
babble (six sentences of other speakers summed); the SNR is the speech's mean power over
its true spans against the noise's mean power.

Matching: each true utterance is paired with the found one that overlaps it most, one to one;
unpaired true ones are missed, unpaired found ones extra. Errors are |found - true| of the
pairs' starts and ends, in ms (median and 90th percentile).

Speakers: the figures come from actors 11-20; the detectors' settings (ENERGY_MARGIN_DB,
WEBRTC_MODE, thresholds) were looked at only on actors 01-10 (``--dev``). Babble for either
comes from the other half.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_utterances.py [--dev] [--per-actor 12]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench import REPO, write_wav

from ser_core import EmotionClassifier, audio
from ser_core.inference import utterances

DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
SR = audio.SAMPLE_RATE
REFERENCE_TOP_DB = 35.0
REFERENCE_FRAME, REFERENCE_HOP = 400, 160  # 25 ms, 10 ms
REFERENCE_MIN_RUN = 5  # frames (50 ms)
GAP_SECONDS = (0.3, 1.5)
EDGE_SECONDS = 0.5  # silence before the first and after the last sentence
BABBLE_TALKERS = 6
CONDITIONS = (("clean", None, None),) + tuple(
    (f"{kind} {snr} dB", kind, snr) for snr in (20, 10) for kind in ("white", "pink", "babble")
)
LONG_SECONDS = 600.0


def speech_span(y: np.ndarray) -> tuple[int, int]:
    """Start and end sample of the speech in a clean clip (see the module docstring)."""
    rms = audio.frame_rms(y, frame_length=REFERENCE_FRAME, hop_length=REFERENCE_HOP)
    db = 20 * np.log10(rms + 1e-10)
    loud = np.concatenate([[False], db > db.max() - REFERENCE_TOP_DB, [False]])
    edges = np.flatnonzero(np.diff(loud.astype(int)))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= REFERENCE_MIN_RUN]
    return runs[0][0] * REFERENCE_HOP, min(y.size, runs[-1][1] * REFERENCE_HOP)


def actors(dev: bool) -> tuple[list[Path], list[Path]]:
    """(actors measured, actors the babble comes from)."""
    first, second = [DATA / f"Actor_{i:02d}" for i in range(1, 11)], [DATA / f"Actor_{i:02d}" for i in range(11, 21)]
    return (first, second) if dev else (second, first)


def concatenation(folder: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``n`` of a speaker's sentences cut to their speech, with random gaps; and the true spans."""
    files = rng.choice(sorted(folder.glob("*.flac")), n, replace=False)
    parts, truth, at = [np.zeros(int(EDGE_SECONDS * SR), np.float32)], [], int(EDGE_SECONDS * SR)
    for i, f in enumerate(files):
        y = audio.load(f)
        a, b = speech_span(y)
        parts.append(y[a:b])
        truth.append((at, at + b - a))
        at += b - a
        gap = int((EDGE_SECONDS if i == n - 1 else rng.uniform(*GAP_SECONDS)) * SR)
        parts.append(np.zeros(gap, np.float32))
        at += gap
    return np.concatenate(parts), truth


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0))
    return np.fft.irfft(spectrum, n)


def babble(n: int, folders: list[Path], rng: np.random.Generator) -> np.ndarray:
    files = rng.choice([f for d in folders for f in sorted(d.glob("*.flac"))], BABBLE_TALKERS, replace=False)
    out = np.zeros(n)
    for f in files:
        y = audio.load(f)
        a, b = speech_span(y)
        y = y[a:b] / np.sqrt(np.mean(y[a:b] ** 2))
        out += np.resize(np.roll(y, rng.integers(y.size)), n)
    return out


def noisy(y: np.ndarray, truth: list[tuple[int, int]], kind: str | None, snr: float | None, others, rng) -> np.ndarray:
    if kind is None:
        return y
    noise = {"white": lambda: rng.standard_normal(y.size), "pink": lambda: pink(y.size, rng)}.get(
        kind, lambda: babble(y.size, others, rng)
    )()
    speech_power = np.mean(np.concatenate([y[a:b] for a, b in truth]) ** 2)
    noise *= np.sqrt(speech_power / 10 ** (snr / 10) / np.mean(noise**2))
    out = y + noise
    return (out / max(1.0, np.abs(out).max())).astype(np.float32)


def found_spans(y: np.ndarray, detector: str) -> list[tuple[int, int]]:
    settings = utterances.Segmentation(detector=detector, pad_seconds=0.0)
    blocks = [
        y[i : i + int(audio.DECODE_BLOCK_SECONDS * SR)] for i in range(0, y.size, int(audio.DECODE_BLOCK_SECONDS * SR))
    ]
    return [(a, a + s.size) for a, s in utterances.utterances(blocks, settings=settings)]


def match(truth: list[tuple[int, int]], found: list[tuple[int, int]]) -> tuple[list[float], list[float], int, int]:
    """(start errors ms, end errors ms, missed, extra) of a one-to-one pairing by overlap."""
    pairs = sorted(
        ((min(b, d) - max(a, c), t, f) for t, (a, b) in enumerate(truth) for f, (c, d) in enumerate(found)),
        reverse=True,
    )
    used_t, used_f, starts, ends = set(), set(), [], []
    for overlap, t, f in pairs:
        if overlap <= 0 or t in used_t or f in used_f:
            continue
        used_t.add(t)
        used_f.add(f)
        starts.append(1e3 * abs(found[f][0] - truth[t][0]) / SR)
        ends.append(1e3 * abs(found[f][1] - truth[t][1]) / SR)
    return starts, ends, len(truth) - len(used_t), len(found) - len(used_f)


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90)) if values else float("nan")


def accuracy(per_actor: int, dev: bool) -> None:
    measured, others = actors(dev)
    rng = np.random.default_rng(15)
    recordings = [concatenation(folder, per_actor, rng) for folder in measured]
    n_true = sum(len(t) for _, t in recordings)
    print(f"{n_true} sentences from actors {measured[0].name[-2:]}-{measured[-1].name[-2:]}, gaps {GAP_SECONDS} s\n")
    print(
        f"{'condition':<16}{'detector':<8}{'start med':>10}{'start p90':>10}{'end med':>9}{'end p90':>9}{'missed':>8}{'extra':>7}"
    )
    for seed, (name, kind, snr) in enumerate(CONDITIONS):
        noise_rng = np.random.default_rng(seed)
        signals = [(noisy(y, truth, kind, snr, others, noise_rng), truth) for y, truth in recordings]
        for detector in utterances.DETECTORS:
            starts, ends, missed, extra = [], [], 0, 0
            for y, truth in signals:
                s, e, m, x = match(truth, found_spans(y, detector))
                starts += s
                ends += e
                missed += m
                extra += x
            print(
                f"{name:<16}{detector:<8}{statistics.median(starts):>8.0f}ms{p90(starts):>8.0f}ms"
                f"{statistics.median(ends):>7.0f}ms{p90(ends):>7.0f}ms{missed:>8d}{extra:>7d}"
            )


def long_recording(seconds: float) -> np.ndarray:
    """``seconds`` of RAVDESS sentences with gaps and pink noise at 20 dB: a long conversation."""
    rng = np.random.default_rng(600)
    parts, total = [], 0
    folders = [DATA / f"Actor_{i:02d}" for i in range(1, 21)]
    while total < seconds * SR:
        y, t = concatenation(folders[len(parts) % len(folders)], 20, rng)
        parts.append(noisy(y, t, "pink", 20, None, rng))
        total += y.size
    return np.concatenate(parts)[: int(seconds * SR)]


def timing() -> None:
    y = long_recording(LONG_SECONDS)
    print(f"\n{LONG_SECONDS / 60:g}-minute recording (RAVDESS sentences, pink noise at 20 dB), one thread:")
    for detector in utterances.DETECTORS:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            n = len(found_spans(y, detector))
            times.append(time.perf_counter() - start)
        print(f"  segmenting, {detector:<7} {min(times):6.2f}-{max(times):6.2f} s ({n} utterances)")
    clf = EmotionClassifier.load(jobs=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        write_wav(path, y, SR)
        for name, job in (("segments", lambda: clf.segments(path)), ("timeline", lambda: clf.timeline(path))):
            times = []
            for _ in range(2):
                start = time.perf_counter()
                result = job()
                times.append(time.perf_counter() - start)
            print(f"  clf.{name}() from a WAV file: {min(times):6.2f}-{max(times):6.2f} s ({len(result.windows)} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="measure actors 01-10 (where settings are chosen)")
    parser.add_argument("--per-actor", type=int, default=12, help="sentences concatenated per actor")
    parser.add_argument("--no-timing", action="store_true", help="skip the 10-minute timing")
    args = parser.parse_args()
    accuracy(args.per_actor, args.dev)
    if not args.no_timing:
        timing()


if __name__ == "__main__":
    main()
