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

import threading
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
    "FEATURE_SETS",
    "build_extractor",
    "load_extractor",
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
CHUNK_CLIPS = 4  # clips per pass through the fast path (speed only)
ROLLOFF_BLOCK = 16  # bins per block of the rolloff's running sum (speed only, not the definition)


_WORKSPACE = threading.local()  # per-thread scratch arrays, reused across calls (no page faults per clip)


def scratch(name: str, shape: tuple[int, ...], max_rows: int, dtype: type = np.float64) -> np.ndarray:
    """A reusable C-contiguous array of this thread (uninitialised), of ``shape``; the first axis
    may grow to ``max_rows``. Valid until the same thread asks for ``name`` again."""
    key = (name, max_rows, shape[1:], np.dtype(dtype).str)
    buf = _WORKSPACE.__dict__.get(key)
    if buf is None or buf.shape[0] < shape[0]:
        buf = _WORKSPACE.__dict__[key] = np.empty((max(max_rows, shape[0]), *shape[1:]), dtype)
    return buf[: shape[0]]


def rolloff_bins(S: np.ndarray, fraction: float, block: int = ROLLOFF_BLOCK) -> np.ndarray:
    """Per row of ``S`` ``(rows, bins)`` (non-negative), the first bin where the running sum reaches
    ``fraction`` of the row's total, as librosa.feature.spectral_rolloff: the number of bins
    whose running sum is still below it. Shape ``(rows,)`` int.

    Summed a block of bins at a time, then cumulated only inside the block where the level
    falls: a full running sum over every bin costs more than the FFT.
    """
    rows_n, n = S.shape
    block = max(1, min(block, n))
    n_blocks = n // block
    running = np.cumsum(S[:, : n_blocks * block].reshape(rows_n, n_blocks, block).sum(axis=2), axis=1)
    level = fraction * (running[:, -1] + S[:, n_blocks * block :].sum(axis=1))
    k = np.count_nonzero(running < level[:, None], axis=1)  # whole blocks below the level (n_blocks: the tail)
    rows = np.arange(rows_n)
    before = np.where(k > 0, running[rows, np.maximum(k - 1, 0)], 0.0)
    cols = np.minimum(k[:, None] * block + np.arange(block), n - 1)  # the tail may be shorter than a block
    inside = before[:, None] + np.cumsum(S[rows[:, None], cols], axis=1)
    return np.minimum(k * block + np.count_nonzero(inside < level[:, None], axis=1), n - 1)


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the feature vector; saved with every model."""

    kind: str = "seed"
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
        if self.kind != "seed":
            raise ParameterError(f"FeatureConfig describes the 'seed' features, not '{self.kind}'.")
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

    @property
    def names(self) -> tuple[str, ...]:
        return feature_names(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        return config_from_dict(cls, data)


def config_from_dict(cls, data: dict):
    """``cls(**data)`` for a feature-config dataclass, refusing settings it does not know."""
    unknown = set(data) - {f.name for f in fields(cls)}
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
    """Weights ``w`` such that ``x @ w`` is the time mean of librosa.feature.delta(x, width=width).

    librosa's delta is ``scipy.signal.savgol_filter(x, width, polyorder=1, deriv=1, mode='interp')``:
    the least-squares slope over ``width`` frames centred on each frame, and at the first and
    last ``width // 2`` frames the slope of a straight line fitted to the first/last ``width``
    frames. It is linear in ``x``, so its mean is too. Shape ``(n_frames,)``.
    """
    if n_frames < width:
        raise ParameterError(f"A clip needs at least {width} frames for deltas.")
    half = width // 2
    k = np.arange(-half, half + 1)
    slope = k / np.sum(k**2)  # least-squares slope of a line through `width` points
    weights = np.zeros(n_frames)
    for t in range(half, n_frames - half):
        weights[t - half : t + half + 1] += slope
    weights[:width] += half * slope  # the first `half` frames share the first window's slope
    weights[n_frames - width :] += half * slope
    return weights / n_frames


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
        # all banks side by side, so one matrix product applies them: (bins, 128 + 48 + 12)
        self._banks_t = np.concatenate([self.filters[name] for name in expected]).T.copy()
        self._dct_t = _dct_matrix(config.n_mfcc, config.n_mels_mfcc).T.astype(np.float32)
        self._delta_w = delta_mean_weights(config.n_frames, config.delta_width).astype(np.float32)
        n = np.arange(config.n_fft)
        # float64: NumPy's pocketfft is several times faster in double than in single precision
        self._window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.n_fft)
        self._freqs = np.linspace(0, config.sample_rate / 2, bins).astype(np.float32)
        self._moments_t = np.stack([np.ones(bins, np.float32), self._freqs], axis=1)  # (bins, 2)

    @property
    def names(self) -> tuple[str, ...]:
        return self.config.names

    @property
    def dct(self) -> np.ndarray:
        """The orthonormal DCT-II rows that turn mel dB into MFCCs. Shape ``(n_mfcc, n_mels_mfcc)``."""
        return self._dct_t.T.copy()

    @property
    def delta_mean_weights(self) -> np.ndarray:
        """Weights whose product with an MFCC track is the mean of its librosa delta. Shape ``(frames,)``."""
        return self._delta_w.copy()

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @classmethod
    def build(cls, config: FeatureConfig = FeatureConfig()) -> FeatureExtractor:
        """An extractor with freshly built filter banks (imports librosa)."""
        return cls(config, build_filters(config))

    def _power(self, clips: np.ndarray) -> np.ndarray:
        """Power spectrogram of centred, zero-padded, Hann-windowed frames. ``(b, t, bins)`` float32.

        Computed in this thread's scratch arrays: the result is valid until its next call."""
        cfg = self.config
        b, n = clips.shape
        t, bins, pad = cfg.n_frames, cfg.n_fft // 2 + 1, cfg.n_fft // 2
        padded = scratch("seed_padded", (b, n + 2 * pad), CHUNK_CLIPS)
        padded[:, :pad] = 0.0
        padded[:, pad : pad + n] = clips
        padded[:, pad + n :] = 0.0
        frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=1)[:, :: cfg.hop_length]
        # float64: NumPy's pocketfft is several times faster in double than in single precision
        windowed = np.multiply(frames, self._window, out=scratch("seed_windowed", (b, t, cfg.n_fft), CHUNK_CLIPS))
        spectrum = np.fft.rfft(windowed, axis=-1, out=scratch("seed_spectrum", (b, t, bins), CHUNK_CLIPS, np.complex128))
        parts = scratch("seed_parts", (b, t, 2 * bins), CHUNK_CLIPS, np.float32)  # re, im interleaved
        np.copyto(parts, spectrum.view(np.float64), casting="same_kind")
        np.square(parts, out=parts)
        return np.add(parts[..., 0::2], parts[..., 1::2], out=scratch("seed_power", (b, t, bins), CHUNK_CLIPS, np.float32))

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
        if clips.shape[0] > CHUNK_CLIPS:  # keep the float64 frames of a chunk in cache
            out = np.concatenate(
                [self._features(clips[i : i + CHUNK_CLIPS]) for i in range(0, len(clips), CHUNK_CLIPS)]
            )
        else:
            out = self._features(clips)
        return out[0] if single else out

    def _features(self, clips: np.ndarray) -> np.ndarray:
        """Features of a few validated clips ``(b, n_samples)`` float32 -> ``(b, n_features)`` float32."""
        cfg = self.config
        b, t = clips.shape[0], cfg.n_frames
        power = self._power(clips)  # (b, t, bins)
        magnitude = np.sqrt(power)

        # every filter bank in one product: 128 mel bands (MFCC), 48 mel bands, chroma
        banks = (power.reshape(b * t, -1) @ self._banks_t).reshape(b, t, -1)
        n1, n2 = cfg.n_mels_mfcc, cfg.n_mels_mfcc + cfg.n_mels
        mel_db = _power_to_db(banks[..., :n1])
        mfcc = mel_db @ self._dct_t  # (b, t, n_mfcc)
        mfcc_mean = mfcc.mean(axis=1)
        mfcc_std = mfcc.std(axis=1)
        mfcc_delta = np.einsum("btc,t->bc", mfcc, self._delta_w)
        mel_mean = _power_to_db(banks[..., n1:n2]).mean(axis=1)

        chroma = banks[..., n2:]
        peak = chroma.max(axis=2, keepdims=True)
        chroma = np.where(peak > np.finfo(np.float32).tiny, chroma / np.where(peak > 0, peak, 1.0), chroma)
        chroma_mean = chroma.mean(axis=1)

        moments = magnitude @ self._moments_t  # (b, t, 2): sum of magnitudes, sum of freq * magnitude
        total = moments[..., 0]
        centroid = np.where(total > 0, moments[..., 1] / np.where(total > 0, total, 1.0), 0.0)
        rolloff = self._freqs[rolloff_bins(magnitude.reshape(b * t, -1), cfg.roll_percent).reshape(b, t)]
        zcr = self._zero_crossing_rate(clips)

        stats = np.stack(
            [centroid.mean(1), centroid.std(1), rolloff.mean(1), rolloff.std(1), zcr.mean(1), zcr.std(1)], axis=1
        )
        out = np.concatenate([mfcc_mean, mfcc_std, mfcc_delta, mel_mean, stats, chroma_mean], axis=1)
        return out.astype(np.float32)

    def _zero_crossing_rate(self, clips: np.ndarray) -> np.ndarray:
        """librosa.feature.zero_crossing_rate on the same frames (edge-padded). ``(b, t)``."""
        cfg = self.config
        b, n = clips.shape
        pad = cfg.n_fft // 2
        negative = clips < -ZC_THRESHOLD  # librosa's signbit after zeroing |y| <= threshold
        # crossing[:, i] is 1 when samples i-1 and i of the padded clip differ in sign; the
        # edge padding repeats the end samples, so crossings only occur inside the clip
        crossing = np.zeros((b, n + 2 * pad), np.int32)
        crossing[:, pad + 1 : pad + n] = negative[:, 1:] != negative[:, :-1]
        starts = np.arange(cfg.n_frames) * cfg.hop_length
        if cfg.n_fft % cfg.hop_length == 0:
            # frame [s, s + n_fft) counts crossings s < i < s + n_fft: whole hops, minus i = s
            k = cfg.n_fft // cfg.hop_length
            n_hops = cfg.n_frames - 1 + k
            hops = crossing[:, : n_hops * cfg.hop_length].reshape(b, n_hops, cfg.hop_length).sum(axis=2)
            window = np.lib.stride_tricks.sliding_window_view(hops, k, axis=1).sum(axis=2)
            counts = window[:, : cfg.n_frames] - crossing[:, starts]
        else:
            csum = np.cumsum(crossing, axis=1)
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


# ---------------------------------------------------------------- feature sets

FEATURE_SETS = ("seed", "rich")  # "seed": the 105 above; "rich": features_rich (1,308)


def _feature_set(kind: str):
    """``(config class, extractor class)`` of a feature set; the rich one is imported on demand."""
    if kind == "seed":
        return FeatureConfig, FeatureExtractor
    if kind == "rich":
        from .features_rich import RichFeatureConfig, RichFeatureExtractor

        return RichFeatureConfig, RichFeatureExtractor
    raise ParameterError(f"Unknown feature set '{kind}'; choose one of {list(FEATURE_SETS)}.")


def build_extractor(kind: str):
    """A fresh extractor of feature set ``kind`` with default settings (training time; imports librosa)."""
    config_cls, extractor_cls = _feature_set(kind)
    return extractor_cls.build(config_cls())


def load_extractor(config: dict, arrays: dict[str, np.ndarray]):
    """The extractor a bundle describes: its feature settings and its stored filter banks."""
    if not isinstance(config, dict):
        raise ParameterError("The feature settings must be a JSON object.")
    config_cls, extractor_cls = _feature_set(config.get("kind", "seed"))
    return extractor_cls(config_cls.from_dict(config), arrays)

