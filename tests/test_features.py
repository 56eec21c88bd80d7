"""Feature tests: known answers on synthetic signals, the fast path against librosa, a golden vector.

Tolerance of the fast path against :func:`reference_features` (librosa, one call per
feature): ``|fast - ref| <= RTOL * |ref| + ATOL`` for every one of the 105 entries.
Regenerate the golden vector (only when the feature definition changes on purpose, and
then retrain the model) with ``.venv/bin/python tests/test_features.py --regenerate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ser_core.audio import N_SAMPLES, SAMPLE_RATE
from ser_core.errors import ParameterError
from ser_core.features.seed import (
    CHUNK_CLIPS,
    FEATURE_NAMES,
    N_FEATURES,
    SeedFeatureConfig,
    SeedFeatureExtractor,
    build_filters,
    delta_mean_weights,
    reference_features,
)
from ser_core.features.spectral import rolloff_bins

librosa = pytest.importorskip("librosa")

RTOL = 1e-4  # relative agreement of the fast path with librosa
ATOL = 1e-3  # absolute floor, for entries near zero (delta means, chroma)
GOLDEN = Path(__file__).parent / "data" / "golden_features.npy"
CONFIG = SeedFeatureConfig()


def index(name: str) -> int:
    return FEATURE_NAMES.index(name)


def tone(freq: float, seconds: float = N_SAMPLES / SAMPLE_RATE) -> np.ndarray:
    """A full-scale sine filling a whole clip. Shape ``(n,)``, float32."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def golden_signal() -> np.ndarray:
    """The fixed clip behind the golden vector: a gliding 9-harmonic voice, syllable envelope,
    seeded noise. Defined here (not in conftest) so it never changes by accident. ``(N_SAMPLES,)``."""
    rng = np.random.default_rng(20240501)
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    pitch = 150 * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k**1.2 for k in range(1, 10))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))
    y = 0.4 * voiced * envelope + 0.01 * rng.standard_normal(N_SAMPLES)
    return (y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="module")
def extractor() -> SeedFeatureExtractor:
    return SeedFeatureExtractor.build(CONFIG)


# ------------------------------------------------------------ known answers


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_pure_tone_centroid_and_rolloff_sit_at_the_tone(extractor: SeedFeatureExtractor, freq: float) -> None:
    f = extractor(tone(freq))
    bin_hz = SAMPLE_RATE / CONFIG.n_fft
    assert f[index("centroid_mean")] == pytest.approx(freq, rel=0.01)
    assert f[index("centroid_std")] < 0.1 * freq  # only the two half-empty edge frames stray
    assert abs(f[index("rolloff_mean")] - freq) <= 2 * bin_hz


@pytest.mark.parametrize(("freq", "pitch_class"), [(440.0, 9), (261.63, 0), (392.0, 7)])  # A4, C4, G4
def test_pure_tone_chroma_peaks_at_its_pitch_class(
    extractor: SeedFeatureExtractor, freq: float, pitch_class: int
) -> None:
    chroma = extractor(tone(freq))[index("chroma0_mean") :]
    assert chroma.shape == (12,)
    assert int(np.argmax(chroma)) == pitch_class
    assert chroma[pitch_class] > 0.95  # the peak class is the maximum of (almost) every frame


@pytest.mark.parametrize("period", [40, 160, 320])
def test_square_wave_zero_crossing_rate(extractor: SeedFeatureExtractor, period: int) -> None:
    n = np.arange(N_SAMPLES)
    square = np.where((n + period // 4) % period < period // 2, 1.0, -1.0).astype(np.float32)
    f = extractor(square)
    # two crossings a period; frames at the clip's ends are half edge padding, which has none
    interior = 2 / period
    frames = CONFIG.n_frames
    assert f[index("zcr_mean")] == pytest.approx(interior, rel=4 / frames + 2 * period / CONFIG.n_fft / frames + 0.01)
    # the exact count, frame by frame, as librosa defines it (centred, edge-padded frames)
    padded = np.pad(square, CONFIG.n_fft // 2, mode="edge")
    counts = [
        np.count_nonzero(np.diff(np.signbit(padded[s : s + CONFIG.n_fft])))
        for s in range(0, frames * CONFIG.hop_length, CONFIG.hop_length)
    ]
    assert f[index("zcr_mean")] == pytest.approx(np.mean(counts) / CONFIG.n_fft, rel=1e-6)
    assert f[index("zcr_std")] == pytest.approx(np.std(counts) / CONFIG.n_fft, rel=1e-5, abs=1e-7)


def test_samples_within_the_zero_threshold_do_not_cross(extractor: SeedFeatureExtractor) -> None:
    tiny = np.full(N_SAMPLES, 1e-11, np.float32)
    tiny[::2] *= -1  # alternating sign, but every sample counts as zero
    assert extractor(tiny)[index("zcr_mean")] == 0.0


# ------------------------------------------------------------ fast path = librosa


def fast_vs_reference(extractor: SeedFeatureExtractor, clip: np.ndarray) -> None:
    fast = extractor(clip)
    ref = reference_features(clip, sr=SAMPLE_RATE, config=CONFIG)
    bad = np.abs(fast - ref) > RTOL * np.abs(ref) + ATOL
    assert not bad.any(), {FEATURE_NAMES[i]: (float(fast[i]), float(ref[i])) for i in np.flatnonzero(bad)}


def test_fast_path_matches_librosa_on_speech_like_sound(extractor: SeedFeatureExtractor, speech: np.ndarray) -> None:
    from ser_core.audio import check_speech, to_clip

    fast_vs_reference(extractor, to_clip(check_speech(speech)))


@pytest.mark.parametrize("kind", ["noise", "quiet_noise", "tone_with_silence", "chirp"])
def test_fast_path_matches_librosa_on_synthetic_signals(
    extractor: SeedFeatureExtractor, rng: np.random.Generator, kind: str
) -> None:
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    if kind == "noise":
        clip = 0.3 * rng.standard_normal(N_SAMPLES)
    elif kind == "quiet_noise":
        clip = 1e-4 * rng.standard_normal(N_SAMPLES)
    elif kind == "tone_with_silence":
        clip = np.where((t > 1.0) & (t < 2.0), np.sin(2 * np.pi * 523.25 * t), 0.0)
    else:
        clip = np.sin(2 * np.pi * (100 * t + 1000 * t**2))  # 100 Hz -> 7 kHz
    fast_vs_reference(extractor, clip.astype(np.float32))


def test_fast_path_matches_librosa_on_real_speech(extractor: SeedFeatureExtractor, ravdess_files: list[Path]) -> None:
    from ser_core.audio import check_speech, load, to_clip

    for path in ravdess_files[:3]:
        fast_vs_reference(extractor, to_clip(check_speech(load(path))))


def test_silent_clip_gives_finite_features_close_to_librosa(extractor: SeedFeatureExtractor) -> None:
    zeros = np.zeros(N_SAMPLES, np.float32)
    fast = extractor(zeros)
    assert np.all(np.isfinite(fast))
    # a constant -100 dB spectrogram: the fast path's float32 std is a rounding error, not 0
    np.testing.assert_allclose(fast, reference_features(zeros, sr=SAMPLE_RATE), rtol=RTOL, atol=1e-2)


def test_golden_vector(extractor: SeedFeatureExtractor) -> None:
    """Fast path and librosa both still give the stored librosa values for a fixed signal."""
    golden = np.load(GOLDEN, allow_pickle=False)
    assert golden.shape == (N_FEATURES,) and golden.dtype == np.float32
    clip = golden_signal()
    np.testing.assert_allclose(extractor(clip), golden, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(reference_features(clip, sr=SAMPLE_RATE), golden, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ building blocks


@pytest.mark.parametrize(("n_frames", "width"), [(219, 9), (9, 9), (10, 9), (50, 5), (3, 3), (40, 3)])
def test_delta_mean_weights_match_librosa_delta(rng: np.random.Generator, n_frames: int, width: int) -> None:
    x = rng.standard_normal((13, n_frames))
    expected = librosa.feature.delta(x, width=width).mean(axis=1)
    np.testing.assert_allclose(x @ delta_mean_weights(n_frames, width), expected, atol=1e-12)


def test_delta_mean_weights_reject_short_input() -> None:
    with pytest.raises(ParameterError, match="at least 9 frames"):
        delta_mean_weights(8, 9)


def test_mfcc_delta_mean_of_a_rising_tone_is_positive_for_its_loudness(extractor: SeedFeatureExtractor) -> None:
    ramp = (tone(500.0) * np.linspace(0.01, 1.0, N_SAMPLES)).astype(np.float32)
    f = extractor(ramp)
    assert f[index("mfcc0_delta_mean")] > 0  # energy grows, so the 0th cepstral coefficient rises
    assert extractor(ramp[::-1].copy())[index("mfcc0_delta_mean")] < 0


def test_batch_equals_one_by_one_across_chunks(extractor: SeedFeatureExtractor, rng: np.random.Generator) -> None:
    clips = (0.2 * rng.standard_normal((2 * CHUNK_CLIPS + 1, N_SAMPLES))).astype(np.float32)
    batch = extractor(clips)
    assert batch.shape == (len(clips), N_FEATURES) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([extractor(c) for c in clips]))


def test_float64_and_float32_input_agree(extractor: SeedFeatureExtractor, speech: np.ndarray) -> None:
    clip = np.resize(speech, N_SAMPLES)
    np.testing.assert_array_equal(extractor(clip.astype(np.float64)), extractor(clip))


@pytest.mark.parametrize("shape", [(N_SAMPLES - 1,), (2, N_SAMPLES + 1), (1, 2, N_SAMPLES)])
def test_wrong_clip_length_is_refused(extractor: SeedFeatureExtractor, shape: tuple[int, ...]) -> None:
    with pytest.raises(ParameterError, match="preprocess them first"):
        extractor(np.zeros(shape, np.float32))


def test_filter_banks_of_the_wrong_shape_are_refused() -> None:
    filters = build_filters(CONFIG)
    filters["chroma"] = filters["chroma"][:, :-1]
    with pytest.raises(ParameterError, match="'chroma' must have shape"):
        SeedFeatureExtractor(CONFIG, filters)


def test_feature_names_match_the_vector_length() -> None:
    assert N_FEATURES == CONFIG.n_features == 105
    assert len(set(FEATURE_NAMES)) == N_FEATURES


if __name__ == "__main__" and "--regenerate" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    np.save(GOLDEN, reference_features(golden_signal(), sr=SAMPLE_RATE))
    print(f"wrote {GOLDEN}")


@pytest.mark.parametrize("bins", [401, 513, 17, 16, 5])
def test_rolloff_bins_match_the_cumulative_definition(bins: int) -> None:
    """The blocked search gives what a full cumulative sum gives, including frames of silence,
    a single loud bin, and a level that falls in the short last block."""
    rng = np.random.default_rng(bins)
    P = rng.random((60, bins)) ** 6
    P[0] = 0.0
    P[1] = 0.0
    P[1, bins // 2] = 1.0
    P[2] = 0.0
    P[2, -1] = 1.0
    for fraction in (0.05, 0.5, 0.85, 0.999):
        cum = np.cumsum(P, axis=1)
        expected = np.count_nonzero(cum < fraction * cum[:, -1:], axis=1)
        np.testing.assert_array_equal(rolloff_bins(P, fraction), expected)
