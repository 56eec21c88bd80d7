"""Run an exported model without ser_core: NumPy, soundfile, soxr and LiteRT only.

    python -m ser_core export --format tflite --out exported/
    python docs/tflite_example.py exported/ speech.wav

Every step follows docs/FEATURES.md; the arrays come from the export's features.npz and
the constants from its features.json. This file is an illustration for other runtimes
(a test checks it agrees with ser_core to 1e-5); applications in Python should use
``ser_core.EmotionClassifier``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def load_export(folder: str | Path) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    folder = Path(folder)
    info = json.loads((folder / "features.json").read_text())
    with np.load(folder / "features.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    labels = (folder / "labels.txt").read_text().split()
    return info, arrays, labels


# ------------------------------------------------------------ preprocessing (FEATURES.md §1)


def frame_rms(y: np.ndarray, frame: int, hop: int) -> np.ndarray:
    pad = frame // 2
    power = np.concatenate([np.zeros(pad), np.square(y, dtype=np.float64), np.zeros(pad)])
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, power.size - frame + 1, hop)
    return np.sqrt(np.maximum(csum[starts + frame] - csum[starts], 0.0) / frame)


def trimmed_speech(y: np.ndarray, pre: dict) -> np.ndarray | None:
    """The signal without leading/trailing silence, or None when there is no speech to judge."""
    frame, hop = pre["trim_frame_length"], pre["trim_hop_length"]
    rms = frame_rms(y, frame, hop)
    if rms.max(initial=0.0) < pre["silence_rms"]:
        return None
    loud = np.flatnonzero(rms > rms.max() * 10.0 ** (-pre["trim_top_db"] / 20.0))
    y = y[int(loud[0]) * hop : min(y.size, (int(loud[-1]) + 1) * hop)]
    return y if y.size >= int(pre["min_speech_seconds"] * pre["sample_rate"]) else None


def to_clip(y: np.ndarray, n_samples: int) -> np.ndarray:
    top = float(np.max(np.abs(y), initial=0.0))
    if top > 0:
        y = (y * np.float32(1.0 / top)).astype(np.float32)
    if y.size >= n_samples:
        start = (y.size - n_samples) // 2
        return y[start : start + n_samples]
    before = (n_samples - y.size) // 2
    return np.pad(y, (before, n_samples - y.size - before))


# ------------------------------------------------------------ features (FEATURES.md §2)


def power_to_db(power: np.ndarray) -> np.ndarray:
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return np.maximum(db, db.max() - 80.0)


def features(clip: np.ndarray, cfg: dict, a: dict[str, np.ndarray]) -> np.ndarray:
    """The 105 features of one preprocessed clip (float32, shape (n_samples,))."""
    n_fft, hop, sr = cfg["n_fft"], cfg["hop_length"], cfg["sample_rate"]
    n_frames = 1 + cfg["n_samples"] // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    padded = np.pad(clip, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (frames, n_fft)
    spectrum = np.fft.rfft(frames * window, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (frames, bins)
    magnitude = np.sqrt(power)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1).astype(np.float32)

    mfcc = power_to_db(power @ a["mel_mfcc"].T) @ a["dct"].astype(np.float32).T  # (frames, 13)
    mel_mean = power_to_db(power @ a["mel"].T).mean(axis=0)

    total = magnitude.sum(axis=1)
    centroid = np.where(total > 0, (magnitude @ freqs) / np.where(total > 0, total, 1.0), 0.0)
    rolloff = freqs[np.argmax(np.cumsum(magnitude, axis=1) >= (cfg["roll_percent"] * total)[:, None], axis=1)]

    edge = np.pad(clip, n_fft // 2, mode="edge")
    clean = np.where(np.abs(edge) <= 1e-10, 0.0, edge)
    crossing = np.signbit(clean[1:]) != np.signbit(clean[:-1])
    csum = np.concatenate([[0], np.cumsum(crossing)])
    starts = np.arange(n_frames) * hop
    zcr = (csum[starts + n_fft - 1] - csum[starts]) / n_fft

    chroma = power @ a["chroma"].T
    peak = chroma.max(axis=1, keepdims=True)
    chroma = np.where(peak > np.finfo(np.float32).tiny, chroma / np.where(peak > 0, peak, 1.0), chroma)

    stats = [centroid.mean(), centroid.std(), rolloff.mean(), rolloff.std(), zcr.mean(), zcr.std()]
    return np.concatenate(
        [
            mfcc.mean(axis=0),
            mfcc.std(axis=0),
            mfcc.T @ a["delta_mean_weights"].astype(np.float32),
            mel_mean,
            np.asarray(stats, np.float32),
            chroma.mean(axis=0),
        ]
    ).astype(np.float32)


# ------------------------------------------------------------ model (FEATURES.md §3-4)


def clips_of(y: np.ndarray, pre: dict) -> list[np.ndarray]:
    """Preprocessed clips for a mono 16 kHz signal: one, or one per 3.5 s window with speech every 1 s."""
    n, sr = pre["n_samples"], pre["sample_rate"]
    speech = trimmed_speech(y, pre)
    if speech is None:
        raise ValueError("no speech to judge")
    if speech.size <= n:
        return [to_clip(speech, n)]
    starts = list(range(0, speech.size - n + 1, sr))
    last = starts[-1] + sr
    if last < speech.size and last + n - sr < speech.size:
        starts.append(last)  # the shorter last window
    windows = (trimmed_speech(speech[s : s + n], pre) for s in starts)
    return [to_clip(w, n) for w in windows if w is not None]


def feature_function(cfg: dict, arrays: dict[str, np.ndarray]):
    """clip -> feature vector for the export's feature set.

    The original 105 ("seed") are written out above. The 1,308 "rich" statistics are
    specified by ser_core/features_rich.py, itself NumPy-only: its code is the reference to
    port (it is too long to repeat here), so for a rich export this example borrows it.
    """
    if cfg.get("kind", "seed") == "seed":
        return lambda clip: features(clip, cfg, arrays)
    from ser_core.features.rich import RichFeatureConfig, RichFeatureExtractor

    return RichFeatureExtractor(RichFeatureConfig.from_dict(cfg), arrays)


def predict(folder: str | Path, y: np.ndarray) -> dict[str, float]:
    """Probabilities for a mono float32 signal at 16 kHz."""
    from ai_edge_litert.interpreter import Interpreter

    info, arrays, labels = load_export(folder)
    pre = {**info["preprocessing"], "sample_rate": info["features"]["sample_rate"]}
    x = np.stack([feature_function(info["features"], arrays)(c) for c in clips_of(y, pre)])
    x = ((x - arrays["mean"]) / arrays["scale"]).astype(np.float32)
    interpreter = Interpreter(model_path=str(Path(folder) / "model.tflite"))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    probs = interpreter.get_tensor(out["index"]).astype(np.float64).mean(axis=0)
    return dict(zip(labels, probs / probs.sum(), strict=True))


def read_audio(path: str, sample_rate: int = 16_000) -> np.ndarray:
    """Decode, mix to mono, resample with soxr (quality HQ)."""
    import soundfile as sf
    import soxr

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    return y if sr == sample_rate else soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)


if __name__ == "__main__":
    probabilities = predict(sys.argv[1], read_audio(sys.argv[2]))
    for label, p in sorted(probabilities.items(), key=lambda kv: -kv[1]):
        print(f"{label:<10} {100 * p:5.1f}%")
