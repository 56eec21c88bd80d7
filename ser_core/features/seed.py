"""The "seed" feature set: the original design's 105 utterance features, from one STFT.

Order (see :data:`FEATURE_NAMES`): MFCC means (13), MFCC standard deviations (13),
MFCC delta means (13), 48 mel bands in dB, mean over time (48), spectral centroid
mean and std, spectral rolloff mean and std, zero-crossing rate mean and std (6),
12 chroma means (12).

:class:`SeedFeatureExtractor` is the fast path used everywhere: the filter banks are built
once (with librosa, at training time) and stored in the model bundle, so serving needs
only NumPy. :func:`reference_features` is the straightforward librosa implementation,
one call per feature, kept as the numerical reference for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import N_SAMPLES, SAMPLE_RATE
from ..errors import ParameterError
from .spectral import FeatureSettings, Workspace, as_clips, centre_pad, power_spectrum, power_to_db, rolloff_bins

__all__ = [
    "SeedFeatureConfig",
    "SeedFeatureExtractor",
    "FEATURE_NAMES",
    "N_FEATURES",
    "reference_features",
]

KIND = "seed"

N_FFT = 1024  # 64 ms at 16 kHz
HOP_LENGTH = 256  # 16 ms
N_MFCC = 13
N_MELS_MFCC = 128  # mel bands under the MFCC (librosa's default)
N_MELS = 48  # mel bands reported as features
N_CHROMA = 12
ROLL_PERCENT = 0.85
DELTA_WIDTH = 9
TOP_DB = 80.0  # dB range kept below the peak, as librosa.power_to_db
ZC_THRESHOLD = 1e-10  # |sample| at or below this counts as zero
CHUNK_CLIPS = 4  # clips per pass through the fast path (speed only)


@dataclass(frozen=True)
class SeedFeatureConfig(FeatureSettings):
    """Everything that defines the feature vector; saved with every model."""

    kind: str = KIND
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
        if self.kind != KIND:
            raise ParameterError(f"SeedFeatureConfig describes the '{KIND}' features, not '{self.kind}'.")
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


def feature_names(config: SeedFeatureConfig = SeedFeatureConfig()) -> tuple[str, ...]:
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


def build_filters(config: SeedFeatureConfig) -> dict[str, np.ndarray]:
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


class SeedFeatureExtractor:
    """Computes the feature vectors of preprocessed clips with one STFT per clip."""

    def __init__(self, config: SeedFeatureConfig, filters: dict[str, np.ndarray]) -> None:
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
        self._workspace = Workspace()

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
    def build(cls, config: SeedFeatureConfig = SeedFeatureConfig()) -> SeedFeatureExtractor:
        """An extractor with freshly built filter banks (imports librosa)."""
        return cls(config, build_filters(config))

    def _power(self, clips: np.ndarray) -> np.ndarray:
        """Power spectrogram of centred, zero-padded, Hann-windowed frames. ``(b, t, bins)`` float32.

        Computed in this thread's workspace: the result is valid until its next call."""
        cfg = self.config
        pad = cfg.n_fft // 2
        padded = centre_pad(
            clips,
            pad,
            workspace=self._workspace,
            name="padded",
            max_rows=CHUNK_CLIPS,
            max_width=cfg.n_samples + 2 * pad,
        )
        frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=1)[:, :: cfg.hop_length]
        return power_spectrum(
            frames, self._window, workspace=self._workspace, name="stft", max_rows=CHUNK_CLIPS, dtype=np.float32
        )

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """Features of preprocessed clips.

        ``clips``: shape ``(batch, n_samples)`` or ``(n_samples,)``, float.
        Returns float32, shape ``(batch, n_features)`` or ``(n_features,)``.
        """
        clips, single = as_clips(clips, self.config.n_samples)
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
        mel_db = power_to_db(banks[..., :n1], top_db=TOP_DB, axis=(1, 2))
        mfcc = mel_db @ self._dct_t  # (b, t, n_mfcc)
        mfcc_mean = mfcc.mean(axis=1)
        mfcc_std = mfcc.std(axis=1)
        mfcc_delta = np.einsum("btc,t->bc", mfcc, self._delta_w)
        mel_mean = power_to_db(banks[..., n1:n2], top_db=TOP_DB, axis=(1, 2)).mean(axis=1)

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


def reference_features(clip: np.ndarray, *, sr: int, config: SeedFeatureConfig = SeedFeatureConfig()) -> np.ndarray:
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
