"""The "rich" utterance descriptor: 1308 features from one STFT, NumPy only at inference.

A port of the research extractor ``extract(y, sr, extended=True)`` ("rich2"; 66.8% UAR
speaker-independent with logistic regression on RAVDESS), with its YIN pitch tracker
replaced by a cheaper autocorrelation one (same accuracy, a third of the time). Order (see
:attr:`RichFeatureExtractor.names`):

* MFCC 1..n_mfcc: mean, std, p10, p50, p90, slope (each block over all coefficients);
  delta std, delta-delta std, mean |delta|.
* log-mel bands: mean, std, and the mean of the frame-mean-removed spectrum (spectral shape).
* 8 frame descriptors (centroid, bandwidth, rolloff, log-flatness, log-mel flux, ZCR,
  RMS dB, 1-5 kHz vs 0-1 kHz ratio): mean, std, p10, p50, p90, slope.
* spectral contrast (octave bands): mean, std.
* pitch and voicing on voiced frames, in semitones re 55 Hz; voicing rate, onset rate,
  duration, mean harmonicity.
* 13 functionals (skew, kurtosis, p1, p25, p75, p99, IQR, range, curvature, up-level time,
  mean |delta|, mean rise, mean fall) of 64 frame descriptors, of the F0 contour and of its
  frame-to-frame change.

The clips come centred and zero-padded from :func:`ser_core.audio.to_clip`; the exact-zero
padding is stripped at both ends first, so the descriptors see only the speech. The filter
banks are built once with librosa at training time (:meth:`RichFeatureExtractor.build`),
stored with the model, and applied with matrix products. Pitch and harmonicity come from
the same power spectrum: its inverse FFT below 4 kHz is each frame's autocorrelation, divided
by the window's own (Boersma 1993); see :meth:`RichFeatureExtractor._periodicity`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..audio import N_SAMPLES, SAMPLE_RATE, frame_view, rms_of_frames
from ..errors import ParameterError
from .spectral import FeatureSettings, Workspace, as_clips, centre_pad, power_spectrum, power_to_db, rolloff_bins

__all__ = ["RichFeatureConfig", "RichFeatureExtractor", "rich_feature_names"]

KIND = "rich"
SPEC_NAMES = ("centroid", "bandwidth", "rolloff", "log_flatness", "flux", "zcr", "rms_db", "alpha_ratio")
STATS = ("mean", "std", "p10", "p50", "p90", "slope")
FUNCTIONALS = (
    "skew", "kurtosis", "p1", "p25", "p75", "p99", "iqr", "range_1_99",
    "curvature", "uplevel_time", "mean_abs_delta", "mean_rise", "mean_fall",
)  # fmt: skip
F0_NAMES = (
    "f0_st_mean", "f0_st_std", "f0_st_p10", "f0_st_p50", "f0_st_p90", "f0_st_range", "f0_st_slope",
    "f0_st_median_abs_delta", "harm_voiced_mean", "harm_voiced_std", "rms_voiced_rel_db_mean",
    "rms_voiced_db_std",
)  # fmt: skip
GLOBAL_NAMES = ("voiced_ratio", "voiced_onset_rate", "duration_s", "harm_mean")
EPS = 1e-12  # floor inside ratios and logs of powers
CONTRAST_TOP_DB = 80.0  # librosa.power_to_db's default range, as spectral_contrast uses it
F0_REFERENCE_HZ = 55.0  # semitone scale origin
MIN_VOICED_FRAMES = 3  # fewer voiced frames: the pitch block is all zeros


@dataclass(frozen=True)
class RichFeatureConfig(FeatureSettings):
    """Everything that defines the rich feature vector; saved with every model."""

    kind: str = KIND
    sample_rate: int = SAMPLE_RATE
    n_samples: int = N_SAMPLES
    n_fft: int = 800  # 50 ms at 16 kHz: three periods of the lowest pitch
    hop_length: int = 320  # 20 ms
    n_mels: int = 64
    n_mfcc: int = 20
    fmin_f0: float = 60.0
    fmax_f0: float = 500.0
    top_db: float = 80.0  # log-mel range kept below its maximum
    delta_width: int = 9
    roll_percent: float = 0.85
    alpha_low_hz: float = 1000.0  # alpha ratio: energy in [low, high) over energy below low
    alpha_high_hz: float = 5000.0
    contrast_fmin: float = 200.0
    contrast_bands: int = 6
    contrast_quantile: float = 0.02
    pitch_max_hz: float = 4000.0  # the autocorrelation sees the spectrum below this (half the rate: lags at 8 kHz)
    peak_tolerance: float = 0.1  # the period is the shortest lag whose peak is within this of the best one
    loud_db: float = 35.0  # a frame is loud when its RMS is within this of the loudest
    voicing_threshold: float = 0.45  # normalised autocorrelation peak for a voiced frame
    min_seconds: float = 0.25  # shortest stretch analysed after stripping the padding

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise ParameterError(f"RichFeatureConfig.kind must be '{KIND}', not {self.kind!r}.")
        if self.sample_rate <= 0 or self.n_samples <= 0:
            raise ParameterError("sample_rate and n_samples must be positive.")
        if self.n_fft <= 0 or self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ParameterError("n_fft and hop_length must be positive with hop_length <= n_fft.")
        if self.n_mels <= 0 or not 0 < self.n_mfcc <= self.n_mels:
            raise ParameterError("n_mels must be positive and n_mfcc between 1 and n_mels.")
        if not 0.0 < self.fmin_f0 < self.fmax_f0 <= self.sample_rate / 2:
            raise ParameterError("fmin_f0 and fmax_f0 must satisfy 0 < fmin_f0 < fmax_f0 <= sample_rate / 2.")
        if self.sample_rate / self.fmin_f0 >= self.n_fft:
            raise ParameterError("fmin_f0 is too low for n_fft: the longest pitch period must fit in one frame.")
        if self.top_db <= 0 or self.loud_db <= 0:
            raise ParameterError("top_db and loud_db must be positive.")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ParameterError("delta_width must be an odd number of at least 3.")
        if not 0.0 < self.roll_percent < 1.0 or not 0.0 < self.contrast_quantile < 1.0:
            raise ParameterError("roll_percent and contrast_quantile must lie strictly between 0 and 1.")
        if not 0.0 < self.alpha_low_hz < self.alpha_high_hz <= self.sample_rate / 2:
            raise ParameterError("alpha_low_hz and alpha_high_hz must satisfy 0 < low < high <= sample_rate / 2.")
        if self.contrast_bands < 1 or self.contrast_fmin <= 0:
            raise ParameterError("contrast_bands must be at least 1 and contrast_fmin positive.")
        if self.contrast_fmin * 2.0 ** (self.contrast_bands - 1) >= self.sample_rate / 2:
            raise ParameterError(
                "The spectral contrast bands exceed the Nyquist frequency; lower contrast_fmin or contrast_bands."
            )
        if not 0.0 < self.voicing_threshold < 1.0 or not 0.0 <= self.peak_tolerance < 1.0:
            raise ParameterError("voicing_threshold must lie between 0 and 1 and peak_tolerance in [0, 1).")
        if not 2 * self.fmax_f0 <= self.pitch_max_hz <= self.sample_rate / 2:
            raise ParameterError("pitch_max_hz must lie between 2 * fmax_f0 and sample_rate / 2.")
        min_len = int(self.min_seconds * self.sample_rate)
        if not self.delta_width * self.hop_length <= min_len <= self.n_samples:
            raise ParameterError("min_seconds must cover at least delta_width frames and fit in one clip.")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def n_features(self) -> int:
        return len(rich_feature_names(self))


def rich_feature_names(config: RichFeatureConfig = RichFeatureConfig()) -> tuple[str, ...]:
    """Names of the feature vector's entries, in order."""
    mfcc = [f"mfcc{i}" for i in range(config.n_mfcc)]
    contrast = [f"contrast{k}" for k in range(config.contrast_bands + 1)]
    names = [f"{m}_{s}" for s in STATS for m in mfcc]
    names += [f"{m}_{s}" for s in ("d1_std", "d2_std", "d1_abs_mean") for m in mfcc]
    names += [f"mel{i}_{s}" for s in ("db_mean", "db_std", "shape_mean") for i in range(config.n_mels)]
    names += [f"{n}_{s}" for s in STATS for n in SPEC_NAMES]
    names += [f"{c}_{s}" for s in ("mean", "std") for c in contrast]
    names += list(F0_NAMES) + list(GLOBAL_NAMES)
    lld = mfcc + [f"{m}_d1" for m in mfcc] + list(SPEC_NAMES) + [f"{n}_diff" for n in SPEC_NAMES] + contrast + ["harm"]
    for rows in (lld, ["f0_st"], ["f0_st_diff"]):
        names += [f"{r}_{f}" for f in FUNCTIONALS for r in rows]
    return tuple(names)


def contrast_band_table(config: RichFeatureConfig) -> np.ndarray:
    """Bin range and quantile count of each spectral contrast band, as librosa.feature.spectral_contrast.

    Returns int64 ``(contrast_bands + 1, 3)``: first bin, end bin (exclusive), bins averaged per side.
    """
    freq = np.linspace(0, config.sample_rate / 2, config.n_bins)
    n_bands = config.contrast_bands
    octa = np.zeros(n_bands + 2)
    octa[1:] = config.contrast_fmin * 2.0 ** np.arange(n_bands + 1)
    table = np.zeros((n_bands + 1, 3), np.int64)
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:], strict=True)):
        band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(band)
        if idx.size == 0:
            raise ParameterError("A spectral contrast band holds no FFT bin; raise n_fft or contrast_fmin.")
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        used = np.flatnonzero(band)
        start, stop = int(used[0]), int(used[-1]) + 1
        count = max(int(np.rint(config.contrast_quantile * band.sum())), 1)
        if k < n_bands:
            stop -= 1  # librosa drops each lower band's top bin
        table[k] = (start, stop, count)
    return table


def build_rich_filters(config: RichFeatureConfig) -> dict[str, np.ndarray]:
    """Every array the extractor needs, built with librosa/scipy (training time only)."""
    import librosa
    import scipy.fft
    import scipy.signal

    w = config.delta_width
    return {
        "mel": librosa.filters.mel(
            sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=0.0, fmax=config.sample_rate / 2
        ),
        "dct": scipy.fft.dct(np.eye(config.n_mels), type=2, norm="ortho", axis=0)[: config.n_mfcc],
        # savgol_filter convolves with these; reversed, they are correlation kernels
        "delta1": scipy.signal.savgol_coeffs(w, 1, deriv=1)[::-1].copy(),
        "delta2": scipy.signal.savgol_coeffs(w, 2, deriv=2)[::-1].copy(),
        "contrast_bands": contrast_band_table(config),
    }


# ---------------------------------------------------------------- statistics


@functools.lru_cache(maxsize=1024)  # every length a clip's frames can have, times the four sets of points
def _percentile_points(n: int, qs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper sorted positions and the fraction between them, as np.percentile 'linear'."""
    pos = (n - 1) * np.asarray(qs, np.float64) / 100.0
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, n - 1), pos - lo


def _percentiles(sorted_x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """np.percentile(method='linear') of each row, given the rows sorted. ``(d, T) -> (len(qs), d)``."""
    lo, hi, t = _percentile_points(sorted_x.shape[1], qs)
    a, b = sorted_x[:, lo], sorted_x[:, hi]
    d = b - a
    return np.where(t < 0.5, a + d * t, b - d * (1 - t)).T  # NumPy's _lerp, both of its branches


@functools.lru_cache(maxsize=256)  # every length a clip's frames can have (176 by default): no misses
def _time_axes(T: int) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Regressors over ``T`` frames: centred time on [-0.5, 0.5] and a centred parabola on [-1, 1],
    each with its squared norm. Cached: every clip of one length shares them (read only)."""
    t = np.linspace(-0.5, 0.5, T)
    u = np.linspace(-1, 1, T)
    t2 = u**2 - (u**2).mean()
    for a in (t, t2):
        a.flags.writeable = False
    return t, float(t @ t), t2, float(t2 @ t2)


def _stats(x: np.ndarray, sorted_x: np.ndarray) -> np.ndarray:
    """Per-row mean, std, p10, p50, p90 and slope over normalised time. ``(d, T) -> (6 d,)``."""
    T = x.shape[1]
    mu = np.add.reduce(x, axis=1) / T  # x.mean(1)
    xc = x - mu[:, None]
    std = np.sqrt(np.einsum("ij,ij->i", xc, xc) / T)
    if T > 1:
        t, tt, _, _ = _time_axes(T)
        slope = xc @ t / tt
    else:
        slope = np.zeros(x.shape[0])
    return np.concatenate([mu, std, *_percentiles(sorted_x, (10, 50, 90)), slope])


def _functionals(x: np.ndarray, sorted_x: np.ndarray | None = None) -> np.ndarray:
    """13 functionals per row (see the module docstring). ``(d, T) -> (13 d,)``."""
    x = np.atleast_2d(x)
    if sorted_x is None:
        sorted_x = np.sort(x, axis=1)
    T = x.shape[1]
    xc = x - np.add.reduce(x, axis=1, keepdims=True) / T  # x.mean(1), without its Python layers
    z = xc / (np.sqrt(np.einsum("ij,ij->i", xc, xc) / T) + 1e-9)[:, None]
    z2 = z * z
    p1, p25, p75, p99 = _percentiles(sorted_x, (1, 25, 75, 99))
    _, _, t2, t2t2 = _time_axes(T)
    curv = xc @ t2 / (t2t2 + 1e-9)
    # counts as sums of booleans and differences as slices: np.count_nonzero and np.diff, without their Python layers
    up = ((x - p1[:, None]) > 0.5 * (p99 - p1)[:, None]).sum(1) / T
    dx = x[:, 1:] - x[:, :-1] if T > 1 else np.zeros((x.shape[0], 1))
    rise_sum = np.maximum(dx, 0.0).sum(1)
    fall_sum = np.minimum(dx, 0.0).sum(1)
    rise = rise_sum / np.maximum((dx > 0).sum(1), 1)
    fall = fall_sum / np.maximum((dx < 0).sum(1), 1)
    return np.concatenate(
        [np.einsum("ij,ij->i", z2, z) / T, np.einsum("ij,ij->i", z2, z2) / T, p1, p25, p75, p99, p75 - p25,
         p99 - p1, curv, up, (rise_sum - fall_sum) / dx.shape[1], rise, fall]
    )  # fmt: skip


def _filter_nearest(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each row with ``kernel``, edges repeated (scipy mode='nearest'). ``(d, T) -> (d, T)``."""
    k = len(kernel)
    half = k // 2
    d, T = x.shape
    padded = np.concatenate([np.repeat(x[:, :1], half, 1), x, np.repeat(x[:, -1:], half, 1)], axis=1)
    s0, s1 = padded.strides
    windows = np.lib.stride_tricks.as_strided(padded, (d, T, k), (s0, s1, s1), writeable=False)
    return windows @ kernel


def _centred(x: np.ndarray) -> tuple[float, np.ndarray]:
    """``(x.mean(), x - x.mean())`` of a vector, the mean computed once and as NumPy computes it."""
    mean = np.add.reduce(x) / x.size
    return mean, x - mean


def _rms(xc: np.ndarray) -> float:
    """Root mean square of a centred vector: ``x.std()`` given ``x - x.mean()``, with NumPy's arithmetic."""
    return np.sqrt(np.add.reduce(xc * xc) / xc.size)


def _pitch_statistics(
    f0: np.ndarray, harm: np.ndarray, rms_db: np.ndarray, voiced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pitch block of the vector from per-frame F0 (Hz), harmonicity, RMS (dB) and the voiced
    frames, shapes ``(T,)``: the F0 statistics, the functionals of the F0 contour (semitones) and of
    its change. All zeros with fewer than ``MIN_VOICED_FRAMES`` voiced frames."""
    T = f0.size
    n_voiced = int(voiced.sum())
    if n_voiced >= MIN_VOICED_FRAMES:
        st = 12 * np.log2(f0[voiced] / F0_REFERENCE_HZ)
        tv = np.flatnonzero(voiced) / max(T - 1, 1) - 0.5
        tc = tv - tv.mean()
        st_mean, st_c = _centred(st)
        slope = (tc @ st_c) / (tc @ tc) if tv[-1] > tv[0] else 0.0  # tv increases
        st_sorted = np.sort(st)[None]
        p10, p50, p90 = (p[0] for p in _percentiles(st_sorted, (10, 50, 90)))
        dst = st[1:] - st[:-1]
        (median_abs_dst,) = _percentiles(np.sort(np.abs(dst))[None], (50,))
        (hv_mean, hv_c), (rv_mean, rv_c) = _centred(harm[voiced]), _centred(rms_db[voiced])
        f_f0 = np.array(
            [st_mean, _rms(st_c), p10, p50, p90, p90 - p10, slope, median_abs_dst[0],
             hv_mean, _rms(hv_c), rv_mean - rms_db.max(), _rms(rv_c)]
        )  # fmt: skip
        f_st = _functionals(st[None], st_sorted)
        f_dst = _functionals(dst[None]) if st.size > 3 else np.zeros(len(FUNCTIONALS))
    else:
        f_f0 = np.zeros(len(F0_NAMES))
        f_st = f_dst = np.zeros(len(FUNCTIONALS))
    return f_f0, f_st, f_dst


# ---------------------------------------------------------------- extractor


class RichFeatureExtractor:
    """Computes the rich feature vector of preprocessed clips (NumPy only)."""

    def __init__(self, config: RichFeatureConfig, filters: dict[str, np.ndarray]) -> None:
        if not isinstance(config, RichFeatureConfig):
            raise ParameterError("RichFeatureExtractor needs a RichFeatureConfig.")
        self.config = config
        bins = config.n_bins
        expected = {
            "mel": (config.n_mels, bins),
            "dct": (config.n_mfcc, config.n_mels),
            "delta1": (config.delta_width,),
            "delta2": (config.delta_width,),
            "contrast_bands": (config.contrast_bands + 1, 3),
        }
        for name, shape in expected.items():
            if name not in filters or np.shape(filters[name]) != shape:
                raise ParameterError(f"Filter '{name}' must have shape {shape} for this rich feature configuration.")
        self.filters = {name: np.asarray(filters[name]) for name in expected}
        bands = self.filters["contrast_bands"]
        if (
            bands.dtype.kind not in "iu"
            or np.any(bands[:, 0] < 0)
            or np.any(bands[:, 1] > bins)
            or np.any(bands[:, 2] < 1)
            or np.any(bands[:, 1] - bands[:, 0] < bands[:, 2])
        ):
            raise ParameterError("Filter 'contrast_bands' holds band edges outside the spectrum; rebuild the filters.")
        for name in expected:
            if not np.all(np.isfinite(self.filters[name])):
                raise ParameterError(f"Filter '{name}' holds NaN or infinite values; rebuild the filters.")
        self.names = rich_feature_names(config)

        sr, n_fft = config.sample_rate, config.n_fft
        self._mel = self.filters["mel"].astype(np.float64)
        self._dct = self.filters["dct"].astype(np.float64)
        self._delta1 = self.filters["delta1"].astype(np.float64)
        self._delta2 = self.filters["delta2"].astype(np.float64)
        self._bands = [tuple(int(v) for v in row) for row in bands]
        # float64 throughout: NumPy's pocketfft is several times faster in double than in single
        self._window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
        self._freqs = np.linspace(0, sr / 2, bins)
        # every weighted sum over bins in one product: total, sum f P, sum f^2 P, and the alpha ratio's bands
        self._moments = np.stack(
            [np.ones(bins), self._freqs, self._freqs**2, self._freqs < config.alpha_low_hz,
             (self._freqs >= config.alpha_low_hz) & (self._freqs < config.alpha_high_hz)],
            axis=1,
        ).astype(np.float64)  # fmt: skip
        # periodicity: autocorrelation from the power spectrum below pitch_max_hz, at a reduced lag rate
        self._acf_bins = int(round(n_fft * config.pitch_max_hz / sr))  # bins 0..acf_bins feed it
        self._acf_size = 2 * self._acf_bins
        self._acf_rate = sr * self._acf_size / n_fft  # lags per second (8 kHz by default)
        self._lag_lo = int(np.floor(self._acf_rate / config.fmax_f0))
        self._lag_hi = int(np.ceil(self._acf_rate / config.fmin_f0))
        lags = np.arange(self._lag_lo - 1, self._lag_hi + 2)  # one neighbour each side, for interpolation
        window_power = np.abs(np.fft.rfft(self._window)) ** 2
        window_acf = np.fft.irfft(window_power[: self._acf_bins + 1], n=self._acf_size)
        self._window_gain = window_acf[0] / window_acf[lags]  # undoes the window's taper (Boersma 1993)
        self._min_len = int(config.min_seconds * sr)
        self._max_frames = config.n_samples // config.hop_length + 1  # frames of an unstripped clip
        self._workspace = Workspace()

    @classmethod
    def build(cls, config: RichFeatureConfig = RichFeatureConfig()) -> RichFeatureExtractor:
        """An extractor with freshly built filters (imports librosa and scipy)."""
        return cls(config, build_rich_filters(config))

    @property
    def n_features(self) -> int:
        return len(self.names)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """Features of preprocessed clips.

        ``clips``: shape ``(batch, n_samples)`` or ``(n_samples,)``, float.
        Returns float32, shape ``(batch, n_features)`` or ``(n_features,)``.
        """
        clips, single = as_clips(clips, self.config.n_samples)
        out = np.empty((clips.shape[0], self.n_features), np.float32)
        for i, clip in enumerate(clips):
            out[i] = self._features(clip)
        return out[0] if single else out

    def strip_padding(self, clip: np.ndarray) -> np.ndarray:
        """The clip without the exact-zero padding at either end, keeping at least ``min_seconds``."""
        sound = clip != 0
        n = clip.size
        start = int(np.argmax(sound))
        if not sound[start]:
            return clip  # all zeros: nothing to strip
        end = n - int(np.argmax(sound[::-1]))
        if end - start < self._min_len:  # as the research code: extend with the padding after the sound
            end = min(n, start + self._min_len)
            start = max(0, end - self._min_len)
        return clip[start:end]

    def _features(self, clip: np.ndarray) -> np.ndarray:
        """Feature vector of one validated clip ``(n_samples,)`` -> ``(n_features,)`` float32."""
        cfg = self.config
        sr, n_fft, hop = cfg.sample_rate, cfg.n_fft, cfg.hop_length
        sound = self.strip_padding(clip)
        n = sound.size
        dur = n / sr

        pad = n_fft // 2
        ws, mt = self._workspace, self._max_frames
        padded = centre_pad(
            sound[None], pad, workspace=ws, name="padded", max_rows=1, max_width=cfg.n_samples + 2 * pad
        )
        padded = padded[0]
        frames = frame_view(padded, n_fft, hop)
        T = frames.shape[0]
        P = power_spectrum(frames, self._window, workspace=ws, name="stft", max_rows=mt)  # (T, bins) float64

        # --- mel / MFCC ---
        logM = power_to_db(self._mel @ P.T, top_db=cfg.top_db)  # (n_mels, T)
        mfcc = self._dct @ logM  # (n_mfcc, T)
        d1 = _filter_nearest(mfcc, self._delta1)
        d2 = _filter_nearest(mfcc, self._delta2)
        cm_mean = logM.mean(1) - logM.mean()  # time mean of the frame-mean-removed log-mel

        # --- spectral shape descriptors ---
        total, m1, m2, low_band, high_band = (P @ self._moments).T
        Ps = total + EPS
        centroid = m1 / Ps
        # sum (f - c)^2 P = sum f^2 P - 2 c sum f P + c^2 sum P
        var = (m2 - 2 * centroid * m1 + centroid**2 * total) / Ps
        bw = np.sqrt(np.maximum(var, 0.0))
        rolloff = self._freqs[rolloff_bins(P, cfg.roll_percent)]
        logP = np.add(P, EPS, out=ws.get("logP", (T, cfg.n_bins), mt))
        flat = np.exp(np.log(logP, out=logP).mean(1)) / (total / cfg.n_bins + EPS)
        dlog = np.maximum(logM[:, 1:] - logM[:, :-1], 0.0)  # np.diff(logM, axis=1).clip(min=0)
        flux = np.concatenate([[0.0], np.sqrt((dlog * dlog).mean(0))])
        zcr = self._zero_crossings(padded, T) / n_fft
        rms_db = 20 * np.log10(rms_of_frames(frames) + 1e-8)  # audio.frame_rms of the sound, from its frames
        alpha = 10 * np.log10((high_band + EPS) / (low_band + EPS))
        spec = np.vstack([centroid / 1000, bw / 1000, rolloff / 1000, np.log10(flat + EPS), flux, zcr, rms_db, alpha])
        contrast = self._contrast(P)

        # --- pitch / voicing ---
        harm, f0 = self._periodicity(P)
        voiced = (rms_db > rms_db.max() - cfg.loud_db) & (harm > cfg.voicing_threshold)
        f_f0, f_st, f_dst = _pitch_statistics(f0, harm, rms_db, voiced)
        onsets = np.count_nonzero(np.diff(voiced.astype(np.int8)) == 1)
        f_glob = np.array([voiced.mean(), onsets / dur, dur, harm.mean()])

        # --- statistics ---
        spec_diff = np.diff(spec, axis=1, prepend=spec[:, :1])
        lld = np.vstack([mfcc, d1, spec, spec_diff, contrast, harm[None]])
        lld_sorted = np.sort(lld, axis=1)
        nm = cfg.n_mfcc
        feat = np.concatenate(
            [
                _stats(mfcc, lld_sorted[:nm]),
                d1.std(1), d2.std(1), np.abs(d1).mean(1),
                logM.mean(1), logM.std(1), cm_mean,
                _stats(spec, lld_sorted[2 * nm : 2 * nm + len(SPEC_NAMES)]),
                contrast.mean(1), contrast.std(1),
                f_f0, f_glob,
                _functionals(lld, lld_sorted), f_st, f_dst,
            ]
        )  # fmt: skip
        out = feat.astype(np.float32)
        out[~np.isfinite(out)] = 0.0  # np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), in two calls
        return out

    def _zero_crossings(self, padded: np.ndarray, T: int) -> np.ndarray:
        """Sign changes inside each of the ``T`` centred frames of ``padded`` (int, shape ``(T,)``):
        one sum per frame, over the changes between its ``n_fft`` samples."""
        sign = np.signbit(padded)
        changes = np.zeros(sign.size, bool)  # one longer than the changes: reduceat needs each bound < size
        np.not_equal(sign[1:], sign[:-1], out=changes[:-1])
        bounds = np.empty(2 * T, np.intp)  # [start, end) of each frame's changes, interleaved
        bounds[0::2] = np.arange(0, T * self.config.hop_length, self.config.hop_length)
        bounds[1::2] = bounds[0::2] + (self.config.n_fft - 1)
        return np.add.reduceat(changes, bounds, dtype=np.int32)[0::2]

    def _contrast(self, P: np.ndarray) -> np.ndarray:
        """librosa.feature.spectral_contrast of the magnitudes ``sqrt(P)``, given powers ``P`` ``(T, bins)``.

        Returns ``(bands + 1, T)``.
        """
        T = P.shape[0]
        peak = np.empty((len(self._bands), T))
        valley = np.empty_like(peak)
        for k, (start, stop, count) in enumerate(self._bands):
            band = P[:, start:stop]
            if count == 1:  # sqrt is monotonic: the extremes of S are the roots of the extremes of P
                valley[k] = np.sqrt(band.min(1))
                peak[k] = np.sqrt(band.max(1))
            else:
                ordered = np.sort(band, axis=1)  # a full sort is faster than np.partition here
                # the mean of the magnitudes (roots) of the count weakest and strongest bins
                valley[k] = np.add.reduce(np.sqrt(ordered[:, :count]), axis=1) / count
                peak[k] = np.add.reduce(np.sqrt(ordered[:, -count:]), axis=1) / count
        return power_to_db(peak, top_db=CONTRAST_TOP_DB) - power_to_db(valley, top_db=CONTRAST_TOP_DB)

    def _periodicity(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Harmonicity and F0 (Hz) of each frame, given its powers ``P`` ``(T, bins)``. Shapes ``(T,)``.

        The autocorrelation of a windowed frame is the inverse FFT of its power spectrum; only
        the bins below ``pitch_max_hz`` are used, which gives it at a lower lag rate for a
        quarter of the work. Divided by the window's own autocorrelation, a periodic frame
        scores near 1 at its period and its multiples (harmonicity: the best score in the pitch
        range). The period is the shortest lag whose peak comes within ``peak_tolerance`` of the
        best, refined by a parabola: the best alone is often twice the period when the loudness
        changes within the frame.
        """
        T = P.shape[0]
        k, m, mt = self._acf_bins, self._acf_size, self._max_frames
        low = self._workspace.get(
            "acf_in", (T, k + 1), mt, np.complex128
        )  # complex input: NumPy's irfft converts real anyway
        low.real = P[:, : k + 1]
        low.imag = 0.0
        acf = np.fft.irfft(low, n=m, axis=1, out=self._workspace.get("acf", (T, m), mt))
        lo, hi = self._lag_lo, self._lag_hi
        r = acf[:, lo - 1 : hi + 2] * (self._window_gain / (acf[:, :1] + EPS))  # lags lo-1..hi+1
        inner = r[:, 1:-1]
        harm = inner.max(1)
        left, right = r[:, :-2], r[:, 2:]
        peaks = (inner > left) & (inner >= right) & (inner >= (harm - self.config.peak_tolerance)[:, None])
        best = np.where(peaks.any(1), np.argmax(peaks, axis=1), np.argmax(inner, axis=1))
        rows = np.arange(T)
        left, mid, right = r[rows, best], r[rows, best + 1], r[rows, best + 2]
        a = left + right - 2.0 * mid
        peak = a < 0
        shift = np.where(peak, 0.5 * (left - right) / np.where(peak, a, -1.0), 0.0).clip(-0.5, 0.5)
        return harm, self._acf_rate / (lo + best + shift)
