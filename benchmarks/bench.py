"""Speed benchmark (issue 5): every target measured against the straightforward pipeline in the same run.

    .venv/bin/python benchmarks/bench.py [--artifacts DIR] [--clips 1000] [--skip-hour]

The straightforward pipeline ("reference") is what the project started from: librosa
decoding, one librosa call per feature (:func:`ser_core.features.seed.reference_features`) and
Keras ``model.predict`` per clip. The fast pipeline is the library as shipped
(:class:`ser_core.EmotionClassifier`: NumPy features, LiteRT), timed in a child process
that never loads TensorFlow (its idle threads spin and would slow the fast path down).
All timings are medians; the machine is shared, so read the ratios, which come from the
same run. Temporary audio goes to a temporary folder, never into the repository. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI does: small products, threads only contend
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ser_core import EMOTIONS, EmotionClassifier, audio  # noqa: E402
from ser_core.bundle import SHIPPED_FOLDER  # noqa: E402
from ser_core.features.seed import reference_features  # noqa: E402

PYTHON = sys.executable
RATE_IN = 44_100  # the generated files' rate, so decoding includes resampling


# ---------------------------------------------------------------- signals


def speech_like(seconds: float, sr: int, *, seed: int) -> np.ndarray:
    """Voiced, speech-like sound: a gliding harmonic tone under a syllable envelope, noise,
    and short pauses. Shape ``(n,)`` float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 250)
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(2.5, 5.0) * t))
    pauses = (np.sin(2 * np.pi * 0.13 * t + rng.uniform(0, 6)) > -0.8).astype(float)  # a pause every ~8 s
    y = 0.3 * voiced * syllables * pauses + 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


def write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(str(path), y, sr, subtype="PCM_16")


def write_long_wav(path: Path, seconds: float, sr: int) -> None:
    """A long recording written block by block (bounded memory here too)."""
    import soundfile as sf

    block = 60.0
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for i in range(int(np.ceil(seconds / block))):
            f.write(speech_like(min(block, seconds - i * block), sr, seed=1000 + i))


# ---------------------------------------------------------------- timing


def median_ms(fn: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def wall_s(cmd: list[str], *, repeat: int, env: dict | None = None) -> float:
    """Median wall time of a command, hyperfine-style (one warm-up run for the file cache)."""
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


class Reference:
    """The straightforward original pipeline: librosa decode, six librosa feature calls, the seed
    network's Keras ``predict`` per clip. It also holds the same seed design on this repository's
    fast path (one-STFT features, LiteRT), so the two can be compared like for like whatever
    bundle ships. Weights are untrained: speed does not depend on them."""

    def __init__(self) -> None:
        import keras

        from ser_core.features.seed import N_FEATURES, SeedFeatureExtractor
        from ser_core.inference.runtime import LiteModel
        from ser_core.training.networks import build_seed, to_tflite

        keras.utils.set_random_seed(0)
        self.model = build_seed(N_FEATURES, len(EMOTIONS))
        self.mean, self.scale = np.zeros(N_FEATURES, np.float32), np.ones(N_FEATURES, np.float32)
        self.tflite = to_tflite(self.model)  # the same network for the fast path (timed in the child)
        self.fast_extractor = SeedFeatureExtractor.build()
        self.fast_model = LiteModel(self.tflite)

    def clip_probabilities(self, clip: np.ndarray) -> np.ndarray:
        x = (reference_features(clip, sr=audio.SAMPLE_RATE) - self.mean) / self.scale
        return self.model.predict(x[None], verbose=0)[0]

    def fast_clip_probabilities(self, clip: np.ndarray) -> np.ndarray:
        return self.fast_model((self.fast_extractor(clip[None]) - self.mean) / self.scale)[0]

    def predict_file(self, path: Path) -> np.ndarray:
        import librosa

        y, _ = librosa.load(str(path), sr=audio.SAMPLE_RATE)
        return self.clip_probabilities(audio.to_clip(audio.check_speech(y)))


# ---------------------------------------------------------------- the table

ROWS: list[tuple[str, str, str, str, str]] = []


def row(name: str, reference: str, fast: str, ratio: str, target: str) -> None:
    ROWS.append((name, reference, fast, ratio, target))
    print(f"  {name}: reference {reference}, fast {fast}, {ratio} (target {target})", file=sys.stderr, flush=True)


def print_table() -> None:
    head = ("measurement", "reference", "fast", "ratio", "target")
    widths = [max(len(r[i]) for r in [head, *ROWS]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for r in ROWS:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)


# ---------------------------------------------------------------- measurements


def warm_clip() -> np.ndarray:
    return audio.to_clip(audio.check_speech(audio.prepare(speech_like(3.5, RATE_IN, seed=1), RATE_IN)))


def fast_measurements(args: dict) -> dict:
    """The fast path's timings (run by :func:`run_fast_child`, in a process without TensorFlow)."""
    from ser_core.features.seed import SeedFeatureExtractor
    from ser_core.inference.runtime import LiteModel

    clf = EmotionClassifier.load(args["artifacts"])
    seed_extractor = SeedFeatureExtractor.build()
    seed_model = LiteModel(Path(args["seed_tflite"]).read_bytes())
    clip = warm_clip()
    clips = np.stack([clip] * 32)
    out = {
        "seed_features": median_ms(lambda: seed_extractor(clip), repeat=300),
        "seed_total": median_ms(lambda: seed_model(seed_extractor(clip[None])), repeat=300),
        "shipped": median_ms(lambda: clf.probabilities(clip), repeat=200),
        "batch": median_ms(lambda: clf.probabilities(clips), repeat=10) / 32,
        "upload": median_ms(lambda: clf.predict(args["upload"]), repeat=100),
        "jobs": clf.jobs,
        "kind": clf.extractor.config.to_dict().get("kind", "seed"),
        "n_features": clf.extractor.n_features,
    }
    speech = sorted(Path(args["data"]).rglob("*.flac"))[::10] if args.get("data") else []
    if speech:  # real speech: most of a RAVDESS clip is padding or pauses, so it costs less than the tone above
        real = [audio.to_clip(audio.check_speech(audio.load(f))) for f in speech]
        for c in real[:5]:
            clf.probabilities(c)
        times = []
        for c in real:
            start = time.perf_counter()
            clf.probabilities(c)
            times.append(time.perf_counter() - start)
        out["real"] = (len(real), 1e3 * statistics.median(times))
    start = time.perf_counter()
    out["timeline_windows"] = len(clf.timeline(args["timeline"]).windows)
    out["timeline"] = time.perf_counter() - start
    return out


def run_fast_child(ref: Reference, clf: EmotionClassifier, tmp: Path, data: Path) -> dict:
    seed_tflite = tmp / "seed.tflite"
    seed_tflite.write_bytes(ref.tflite)
    args = {
        "artifacts": str(clf.bundle.path),
        "seed_tflite": str(seed_tflite),
        "upload": str(tmp / "upload.wav"),
        "timeline": str(tmp / "ten_minutes.wav"),
        "data": str(data) if data.is_dir() else None,
    }
    out = subprocess.run(
        [PYTHON, __file__, "--fast-child", json.dumps(args)], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout)


def bench_warm(ref: Reference, fast: dict) -> None:
    clip = warm_clip()
    gap = np.max(np.abs(ref.fast_clip_probabilities(clip) - ref.clip_probabilities(clip)))
    print(f"  seed design, fast vs reference probabilities on this clip: max difference {gap:.1e}", file=sys.stderr)
    slow = median_ms(lambda: ref.clip_probabilities(clip), repeat=30)
    feats_ref = median_ms(lambda: reference_features(clip, sr=audio.SAMPLE_RATE), repeat=30)
    feats, seed_fast, shipped = fast["seed_features"], fast["seed_total"], fast["shipped"]
    row("warm clip: seed features", f"{feats_ref:.2f} ms", f"{feats:.2f} ms", f"{feats_ref / feats:.1f}x", "-")
    row(
        "warm clip: seed features + model",
        f"{slow:.2f} ms",
        f"{seed_fast:.2f} ms",
        f"{slow / seed_fast:.1f}x",
        "<= 3 ms, >= 15x",
    )
    row(
        f"warm clip: shipped bundle ({fast['kind']}, {fast['n_features']} features) + model",
        f"{slow:.2f} ms",
        f"{shipped:.2f} ms",
        f"{slow / shipped:.1f}x",
        "a few ms",
    )
    batch = fast["batch"]
    row("warm clip, shipped bundle, batch of 32", "-", f"{batch:.2f} ms/clip", f"{slow / batch:.1f}x", "-")
    if "real" in fast:
        n, real = fast["real"]
        row(
            f"warm RAVDESS clip, shipped bundle (median of {n})",
            "-",
            f"{real:.2f} ms",
            f"{slow / real:.1f}x",
            "a few ms",
        )


def bench_upload(ref: Reference, fast: dict, tmp: Path) -> None:
    slow = median_ms(lambda: ref.predict_file(tmp / "upload.wav"), repeat=15)
    row(
        "3.5 s upload (44.1 kHz WAV), server time",
        f"{slow:.1f} ms",
        f"{fast['upload']:.1f} ms",
        f"{slow / fast['upload']:.1f}x",
        "< 100 ms",
    )


def bench_timeline(ref: Reference, fast: dict, tmp: Path) -> None:
    # reference: the same windows one by one; measured on 10 windows and scaled
    y = next(audio.stream(tmp / "ten_minutes.wav", block_seconds=20.0))  # the first 20 s
    win, hop = audio.N_SAMPLES, int(audio.SAMPLE_RATE)
    windows = [y[s : s + win] for s in range(0, 10 * hop, hop)]
    per = (
        median_ms(lambda: [ref.clip_probabilities(audio.to_clip(audio.check_speech(w))) for w in windows], repeat=3)
        / 10
    )
    n = fast["timeline_windows"]
    slow = per * n / 1e3
    row(
        f"10-min timeline ({n} windows, {fast['jobs']} threads)",
        f"{slow:.1f} s (est.)",
        f"{fast['timeline']:.2f} s",
        f"{slow / fast['timeline']:.1f}x",
        "< 3 s",
    )


def bench_folder(clf: EmotionClassifier, ref: Reference, tmp: Path, n_clips: int) -> None:
    folder = tmp / "clips"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n_clips):
        write_wav(folder / f"clip{i:04d}.wav", speech_like(rng.uniform(2.0, 3.0), RATE_IN, seed=10 + i), RATE_IN)
    files = sorted(folder.iterdir())
    cmd = [PYTHON, "-m", "ser_core", "predict", "--json", "--jobs", "2", str(folder)]
    if clf.bundle.path != SHIPPED_FOLDER:
        cmd += ["--artifacts", str(clf.bundle.path)]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO)
    fast = n_clips / (time.perf_counter() - start)
    results = [json.loads(line) for line in out.stdout.splitlines()]
    errors = sum("error" in r for r in results)
    assert len(results) == n_clips and not errors, f"{len(results)} results, {errors} errors: {out.stderr[-500:]}"
    sample = files[:20]
    per = median_ms(lambda: [ref.predict_file(f) for f in sample], repeat=1, warmup=0) / len(sample)
    slow = 2 * 1e3 / per  # as if the reference ran perfectly on both cores
    row(
        f"{n_clips} clips of 2-3 s, CLI --jobs 2",
        f"{slow:.0f} clips/s (2 x 1 core)",
        f"{fast:.0f} clips/s",
        f"{fast / slow:.1f}x",
        ">= 400 clips/s",
    )


def bench_cold(clf: EmotionClassifier, tmp: Path) -> None:
    path = tmp / "one.wav"
    write_wav(path, speech_like(3.0, RATE_IN, seed=4), RATE_IN)
    args = [] if clf.bundle.path == SHIPPED_FOLDER else ["--artifacts", str(clf.bundle.path)]
    fast = wall_s([PYTHON, "-m", "ser_core", "predict", str(path), *args], repeat=10)
    reference_script = (
        "import sys, numpy as np, librosa, keras\n"
        "from ser_core import audio\nfrom ser_core.features.seed import reference_features\n"
        "from ser_core.training.networks import build_seed\nfrom ser_core import EMOTIONS\n"
        "m = build_seed(105, 7)\n"
        "y, _ = librosa.load(sys.argv[1], sr=16000)\n"
        "x = reference_features(audio.to_clip(audio.check_speech(y)), sr=16000)\n"
        "print(EMOTIONS[int(np.argmax(m.predict(x[None], verbose=0)))])\n"
    )
    slow = wall_s([PYTHON, "-c", reference_script, str(path)], repeat=3)
    row("cold start: process to verdict", f"{slow:.2f} s", f"{fast:.2f} s", f"{slow / fast:.1f}x", "<= 1.0 s")
    probe = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "ser_core", "predict", str(path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    heavy = sorted(
        {line.split("|")[-1].strip().split(".")[0] for line in probe.stderr.splitlines() if "|" in line}
        & {"tensorflow", "keras", "librosa", "scipy", "sklearn", "numba"}
    )
    print(f"  heavy modules imported on the inference path: {heavy or 'none'}", file=sys.stderr)
    assert not heavy, heavy


# peak RSS from VmHWM: ru_maxrss of a child started by this (Keras-sized) process keeps the parent's peak
HOUR_SCRIPT = """
import re, sys, time
from ser_core import EmotionClassifier
def hwm_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
clf = EmotionClassifier.load(sys.argv[2])
base = hwm_kb()
start = time.perf_counter()
t = clf.timeline(sys.argv[1])
print(time.perf_counter() - start, base, hwm_kb(), len(t.windows))
"""


def bench_hour(clf: EmotionClassifier, tmp: Path) -> None:
    path = tmp / "one_hour.wav"
    write_long_wav(path, 3600.0, RATE_IN)
    size_mb = path.stat().st_size / 2**20
    out = subprocess.run(
        [PYTHON, "-c", HOUR_SCRIPT, str(path), str(clf.bundle.path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    seconds, base_kb, peak_kb, n = out.stdout.split()
    decoded_mb = 3600 * audio.SAMPLE_RATE * 4 / 2**20
    row(
        f"1-hour timeline ({n} windows, {size_mb:.0f} MB WAV)",
        f"whole file decoded: {decoded_mb:.0f} MB",
        f"peak RSS {int(peak_kb) / 1024:.0f} MB (after load {int(base_kb) / 1024:.0f} MB), {float(seconds):.0f} s",
        "-",
        "bounded memory",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--artifacts", default=None, help="model bundle folder (default: the shipped one)")
    parser.add_argument("--clips", type=int, default=1000, help="clips in the folder benchmark")
    parser.add_argument("--skip-hour", action="store_true", help="skip the 1-hour memory run")
    parser.add_argument(
        "--data",
        default=str(REPO.parent / "shared" / "data" / "ravdess-speech-16k"),
        help="RAVDESS folder for the real-speech row (skipped when missing)",
    )
    parser.add_argument("--fast-child", metavar="JSON", help=argparse.SUPPRESS)  # internal: see run_fast_child
    args = parser.parse_args()
    if args.fast_child:
        print(json.dumps(fast_measurements(json.loads(args.fast_child))))
        return 0

    clf = EmotionClassifier.load(args.artifacts)
    print("loading Keras for the reference pipeline...", file=sys.stderr, flush=True)
    ref = Reference()
    tmp = Path(tempfile.mkdtemp(prefix="ser-bench-"))
    try:
        write_wav(tmp / "upload.wav", speech_like(3.5, RATE_IN, seed=2), RATE_IN)
        write_long_wav(tmp / "ten_minutes.wav", 600.0, RATE_IN)
        print("timing the fast path in a child process...", file=sys.stderr, flush=True)
        fast = run_fast_child(ref, clf, tmp, Path(args.data))
        bench_warm(ref, fast)
        bench_upload(ref, fast, tmp)
        bench_timeline(ref, fast, tmp)
        bench_folder(clf, ref, tmp, args.clips)
        bench_cold(clf, tmp)
        if not args.skip_hour:
            bench_hour(clf, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; medians; "
        f"bench peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
