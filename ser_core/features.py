"""The 105 utterance features, from one shared STFT.

Order (see :data:`FEATURE_NAMES`): MFCC means (13), MFCC standard deviations (13),
MFCC delta means (13), 48 mel bands in dB, mean over time (48), spectral centroid
mean and std, spectral rolloff mean and std, zero-crossing rate mean and std (6),
12 chroma means (12).

:class:`FeatureExtractor` is the fast path used everywhere: the filter banks are built
once (with librosa, at training time) and stored in the model bundle, so serving needs
only NumPy. :func:`reference_features` is the straightforward librosa implementation,
one call per feature, kept as the numerical reference for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .audio import N_SAMPLES, SAMPLE_RATE
from .errors import ParameterError

__all__ = [
    "FeatureConfig",
    "FeatureExtractor",
    "FEATURE_NAMES",
    "N_FEATURES",
    "reference_features",
]

N_FFT = 1024  # 64 ms at 16 kHz
HOP_LENGTH = 256  # 16 ms
N_MFCC = 13
N_MELS_MFCC = 128  # mel bands under the MFCC (librosa's default)
N_MELS = 48  # mel bands reported as features
N_CHROMA = 12
ROLL_PERCENT = 0.85
DELTA_WIDTH = 9
AMIN = 1e-10  # power floor before dB
TOP_DB = 80.0  # dB range kept below the peak, as librosa.power_to_db
ZC_THRESHOLD = 1e-10  # |sample| at or below this counts as zero


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the feature vector; saved with every model."""

    sample_rate: int = SAMPLE_RATE
    n_samples: int = N_SAMPLES
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mfcc: int = N_MFCC
    n_mels_mfcc: int = N_MELS_MFCC
    n_mels: int = N_MELS
    n_chroma: int = N_CHROMA
    roll_percent: float = ROLL_PERCENT
    delta_width: int = DELTA_WIDTH

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ParameterError("n_fft and hop_length must be positive with hop_length <= n_fft.")
        if not 0.0 < self.roll_percent < 1.0:
            raise ParameterError("roll_percent must lie strictly between 0 and 1.")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ParameterError("delta_width must be an odd number of at least 3.")
        if self.n_mfcc > self.n_mels_mfcc:
            raise ParameterError("n_mfcc cannot exceed n_mels_mfcc.")

    @property
    def n_frames(self) -> int:
        """STFT frames of one clip (centred)."""
        return 1 + self.n_samples // self.hop_length

    @property
    def n_features(self) -> int:
        return 3 * self.n_mfcc + self.n_mels + 6 + self.n_chroma

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ParameterError(f"Unknown feature settings {sorted(unknown)}; the bundle is from another version.")
        return cls(**data)


def feature_names(config: FeatureConfig = FeatureConfig()) -> tuple[str, ...]:
    """Names of the feature vector's entries, in order."""
    names = [f"mfcc{i}_mean" for i in range(config.n_mfcc)]
    names += [f"mfcc{i}_std" for i in range(config.n_mfcc)]
    names += [f"mfcc{i}_delta_mean" for i in range(config.n_mfcc)]
    names += [f"mel{i}_db_mean" for i in range(config.n_mels)]
    names += ["centroid_mean", "centroid_std", "rolloff_mean", "rolloff_std", "zcr_mean", "zcr_std"]
    names += [f"chroma{i}_mean" for i in range(config.n_chroma)]
    return tuple(names)


FEATURE_NAMES = feature_names()
N_FEATURES = len(FEATURE_NAMES)  # 105


def delta_mean_weights(n_frames: int, width: int) -> np.ndarray:
    """Weights ``w`` such that ``x @ w`` is the time mean of librosa.feature.delta(x).

    librosa's delta is a Savitzky-Golay first derivative (order 2) with polynomial
    fits at the edges (``mode='interp'``); it is linear in ``x``, so its mean is too.
    Shape ``(n_frames,)``.
    """
    if n_frames < width:
        raise ParameterError(f"A clip needs at least {width} frames for deltas.")
    half = width // 2
    operator = np.zeros((n_frames, n_frames))
    k = np.arange(-half, half + 1)
    centre = k / np.sum(k**2)
    for t in range(half, n_frames - half):
        operator[t, t - half : t + half + 1] = centre
    # Edges: fit a quadratic to the first/last `width` points, differentiate it.
    pos = np.arange(width, dtype=float)
    fit = np.linalg.pinv(np.vander(pos, 3))  # (3, width): coefficients a, b, c of a t^2 + b t + c
    for t in range(half):
        slope = 2 * fit[0] * t + fit[1]
        operator[t, :width] = slope
        operator[n_frames - half + t, n_frames - width :] = 2 * fit[0] * (width - half + t) + fit[1]
    return operator.mean(axis=0)


def build_filters(config: FeatureConfig) -> dict[str, np.ndarray]:
    """The filter banks the fast path needs, built with librosa (training time only)."""
    import librosa

    sr, n_fft = config.sample_rate, config.n_fft
    return {
        "mel_mfcc": librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=config.n_mels_mfcc).astype(np.float32),
        "mel": librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=config.n_mels).astype(np.float32),
        "chroma": librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=config.n_chroma).astype(np.float32),
    }


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II rows, as scipy.fft.dct(norm='ortho'). Shape ``(n_out, n_in)``."""
    n = np.arange(n_in)
    basis = np.cos(np.pi * np.arange(n_out)[:, None] * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def _power_to_db(power: np.ndarray) -> np.ndarray:
    """librosa.power_to_db with ref=1, per clip (the top_db floor uses each clip's own max).

    ``power``: shape ``(batch, frames, bands)``.
    """
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    floor = db.max(axis=(1, 2), keepdims=True) - TOP_DB
    return np.maximum(db, floor)


class FeatureExtractor:
    """Computes the feature vectors of preprocessed clips with one STFT per clip."""

    def __init__(self, config: FeatureConfig, filters: dict[str, np.ndarray]) -> None:
        self.config = config
        bins = config.n_fft // 2 + 1
        expected = {
            "mel_mfcc": (config.n_mels_mfcc, bins),
            "mel": (config.n_mels, bins),
            "chroma": (config.n_chroma, bins),
        }
        for name, shape in expected.items():
            if name not in filters or filters[name].shape != shape:
                raise ParameterError(f"Filter bank '{name}' must have shape {shape} for this feature configuration.")
        self.filters = {name: np.asarray(filters[name], dtype=np.float32) for name in expected}
        self._mel_mfcc_t = self.filters["mel_mfcc"].T.copy()
        self._mel_t = self.filters["mel"].T.copy()
        self._chroma_t = self.filters["chroma"].T.copy()
        self._dct_t = _dct_matrix(config.n_mfcc, config.n_mels_mfcc).T.astype(np.float32)
        self._delta_w = delta_mean_weights(config.n_frames, config.delta_width).astype(np.float32)
        n = np.arange(config.n_fft)
        # float64: NumPy's pocketfft is several times faster in double than in single precision
        self._window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.n_fft)
        self._freqs = np.linspace(0, config.sample_rate / 2, bins).astype(np.float32)

    @classmethod
    def build(cls, config: FeatureConfig = FeatureConfig()) -> FeatureExtractor:
        """An extractor with freshly built filter banks (imports librosa)."""
        return cls(config, build_filters(config))

    def _frames(self, clips: np.ndarray, mode: str) -> np.ndarray:
        """Centred frames ``(batch, frames, n_fft)`` of padded clips."""
        cfg = self.config
        pad = cfg.n_fft // 2
        padded = np.pad(clips, ((0, 0), (pad, pad)), mode=mode)
        frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=1)
        return frames[:, :: cfg.hop_length]

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """Features of preprocessed clips.

        ``clips``: shape ``(batch, n_samples)`` or ``(n_samples,)``, float.
        Returns float32, shape ``(batch, n_features)`` or ``(n_features,)``.
        """
        cfg = self.config
        clips = np.asarray(clips, dtype=np.float32)
        single = clips.ndim == 1
        if single:
            clips = clips[None]
        if clips.ndim != 2 or clips.shape[1] != cfg.n_samples:
            raise ParameterError(f"Clips must have {cfg.n_samples} samples each; preprocess them first.")
        spectrum = np.fft.rfft(self._frames(clips, "constant") * self._window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (b, t, bins)
        magnitude = np.sqrt(power)

        mel_db = _power_to_db(power @ self._mel_mfcc_t)
        mfcc = mel_db @ self._dct_t  # (b, t, n_mfcc)
        mfcc_mean = mfcc.mean(axis=1)
        mfcc_std = mfcc.std(axis=1)
        mfcc_delta = np.einsum("btc,t->bc", mfcc, self._delta_w)

        mel_mean = _power_to_db(power @ self._mel_t).mean(axis=1)

        total = magnitude.sum(axis=2)
        safe_total = np.where(total > 0, total, 1.0)
        centroid = np.where(total > 0, (magnitude @ self._freqs) / safe_total, 0.0)
        cumulative = np.cumsum(magnitude, axis=2)
        reached = cumulative >= (cfg.roll_percent * total)[..., None]
        rolloff = self._freqs[np.argmax(reached, axis=2)]

        zcr = self._zero_crossing_rate(clips)

        chroma = power @ self._chroma_t
        peak = chroma.max(axis=2, keepdims=True)
        chroma = np.where(peak > np.finfo(np.float32).tiny, chroma / np.where(peak > 0, peak, 1.0), chroma)
        chroma_mean = chroma.mean(axis=1)

        stats = np.stack(
            [centroid.mean(1), centroid.std(1), rolloff.mean(1), rolloff.std(1), zcr.mean(1), zcr.std(1)], axis=1
        )
        out = np.concatenate([mfcc_mean, mfcc_std, mfcc_delta, mel_mean, stats, chroma_mean], axis=1)
        out = out.astype(np.float32)
        return out[0] if single else out

    def _zero_crossing_rate(self, clips: np.ndarray) -> np.ndarray:
        """librosa.feature.zero_crossing_rate on the same frames (edge-padded). ``(b, t)``."""
        cfg = self.config
        pad = cfg.n_fft // 2
        padded = np.pad(clips, ((0, 0), (pad, pad)), mode="edge")
        clean = np.where(np.abs(padded) <= ZC_THRESHOLD, 0.0, padded)
        crossing = np.signbit(clean[:, 1:]) != np.signbit(clean[:, :-1])  # between i-1 and i
        csum = np.concatenate([np.zeros((clips.shape[0], 1)), np.cumsum(crossing, axis=1)], axis=1)
        starts = np.arange(cfg.n_frames) * cfg.hop_length
        # crossings inside a frame [s, s + n_fft): pairs (i-1, i) with s < i < s + n_fft
        counts = csum[:, starts + cfg.n_fft - 1] - csum[:, starts]
        return counts / cfg.n_fft


def reference_features(clip: np.ndarray, *, sr: int, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The straightforward implementation: one librosa call per feature, six passes.

    Slow; kept as the numerical reference for tests and benchmarks.
    ``clip``: shape ``(n_samples,)``. Returns float32, shape ``(n_features,)``.
    Chroma uses ``tuning=0`` (no tuning estimate) like the fast path.
    """
    import librosa

    kw = {"n_fft": config.n_fft, "hop_length": config.hop_length}
    y = np.asarray(clip, dtype=np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.n_mfcc, n_mels=config.n_mels_mfcc, **kw)
    delta = librosa.feature.delta(mfcc, width=config.delta_width)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=config.n_mels, **kw))
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, **kw)[0]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=config.roll_percent, **kw)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=config.n_fft, hop_length=config.hop_length)[0]
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0, n_chroma=config.n_chroma, **kw)
    return np.concatenate(
        [
            mfcc.mean(axis=1),
            mfcc.std(axis=1),
            delta.mean(axis=1),
            mel.mean(axis=1),
            [centroid.mean(), centroid.std(), rolloff.mean(), rolloff.std(), zcr.mean(), zcr.std()],
            chroma.mean(axis=1),
        ]
    ).astype(np.float32)
