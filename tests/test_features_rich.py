"""Rich feature tests: configuration rules, known answers, librosa pieces, the research extractor, a golden vector.

Tolerance against the research ``extract()`` (librosa + scipy, float32 STFT) and against
the golden vector it produced: ``|port - ref| <= RTOL * |ref| + ATOL`` for each of the
1254 entries that do not depend on pitch or voicing. The port computes in float64 where the
research code's librosa calls run in float32, so entries differ by float32 rounding carried
through statistics (measured: at most ~3e-5 relative, ~7e-5 absolute on speech).
The other 54 (:data:`PERIODICITY`) come from the port's own autocorrelation pitch tracker,
which replaced the research code's YIN for speed; known answers and librosa's YIN check them.
Regenerate the golden vector (only when the feature definition changes on purpose, and
then retrain the model) with ``.venv/bin/python tests/test_features_rich.py --regenerate``;
it needs the research code at :data:`RESEARCH`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ser_core.audio import N_SAMPLES, SAMPLE_RATE
from ser_core.errors import ParameterError
from ser_core.features.rich import RichFeatureConfig, RichFeatureExtractor, build_rich_filters, rich_feature_names

RTOL = 2e-4
ATOL = 2e-4
GOLDEN = Path(__file__).parent / "data" / "golden_rich.npy"
RESEARCH = Path("/work/scratch/accuracy/features.py")
RAVDESS = Path("/work/shared/data/ravdess-speech-16k")
CONFIG = RichFeatureConfig()
RESEARCH_CONFIG = RichFeatureConfig(n_fft=1024, hop_length=256)  # the research code's fixed STFT


def index(name: str) -> int:
    return CONFIG_NAMES.index(name)


CONFIG_NAMES = rich_feature_names(CONFIG)
PERIODICITY = tuple(n for n in CONFIG_NAMES if n.startswith(("f0_", "harm", "rms_voiced", "voiced_")))
COMPARED = np.array([n not in PERIODICITY for n in CONFIG_NAMES])  # entries defined as in the research code


def centred(content: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """Peak-normalised ``content`` centred in ``n`` zero samples, as audio.to_clip. ``(n,)`` float32."""
    y = content / np.max(np.abs(content))
    before = (n - y.size) // 2
    return np.pad(y, (before, n - y.size - before)).astype(np.float32)


def left_aligned(clip: np.ndarray) -> np.ndarray:
    """The same clip laid out as the research preprocess did: sound first, zeros after."""
    start = int(np.flatnonzero(clip)[0])
    return np.pad(clip[start:], (0, start))


def golden_content() -> np.ndarray:
    """The fixed sound behind the golden vector: 1.6 s of a gliding 10-harmonic voice under a
    syllable envelope, with seeded noise. Defined here so it never changes by accident."""
    rng = np.random.default_rng(20250101)
    n = int(1.6 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = 130 * (1 + 0.25 * t) * (1 + 0.03 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k**1.3 for k in range(1, 11))
    envelope = 0.55 - 0.45 * np.cos(2 * np.pi * 3.5 * t)
    return 0.4 * voiced * envelope + 0.01 * rng.standard_normal(n)


def harmonic_tone(f0: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))


def load_research() -> ModuleType:
    """The research extractor, imported from its file under a name that cannot clash."""
    if not RESEARCH.is_file():
        pytest.skip(f"the research code is not at {RESEARCH} (only on the development machine)")
    pytest.importorskip("librosa")
    spec = importlib.util.spec_from_file_location("research_rich_features", RESEARCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_close(port: np.ndarray, ref: np.ndarray) -> None:
    """Every entry outside :data:`PERIODICITY` agrees within the tolerance."""
    bad = (np.abs(port - ref) > RTOL * np.abs(ref) + ATOL) & COMPARED
    assert not bad.any(), {CONFIG_NAMES[i]: (float(port[i]), float(ref[i])) for i in np.flatnonzero(bad)}


@pytest.fixture(scope="module")
def extractor() -> RichFeatureExtractor:
    pytest.importorskip("librosa")
    return RichFeatureExtractor.build(CONFIG)


@pytest.fixture(scope="module")
def research_extractor() -> RichFeatureExtractor:
    """The port with the research code's STFT (the shipped default uses a shorter, cheaper one)."""
    pytest.importorskip("librosa")
    return RichFeatureExtractor.build(RESEARCH_CONFIG)


# ------------------------------------------------------------ configuration


def test_default_configuration_has_1308_named_features() -> None:
    assert CONFIG.n_features == 1308
    assert len(CONFIG_NAMES) == 1308
    assert len(set(CONFIG_NAMES)) == 1308
    assert len(PERIODICITY) == 12 + 3 + 3 * 13  # pitch block, voicing globals, functionals of harm/F0/F0 change


def test_feature_count_follows_the_configuration() -> None:
    small = RichFeatureConfig(n_mels=40, n_mfcc=13, contrast_bands=5)
    # 9 per MFCC, 3 per mel band, 48 frame stats, 2 per contrast band, 16 pitch/global; 13 functionals
    # of (2 n_mfcc + 16 + bands + 1) frame descriptors and of the F0 contour and its change
    assert small.n_features == 9 * 13 + 3 * 40 + 48 + 2 * 6 + 16 + 13 * (2 * 13 + 16 + 6 + 1 + 2)


def test_configuration_round_trips_through_a_dict() -> None:
    config = RichFeatureConfig(n_mfcc=13, fmax_f0=400.0)
    assert RichFeatureConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["kind"] == "rich"


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ParameterError, match="Unknown feature settings"):
        RichFeatureConfig.from_dict({**CONFIG.to_dict(), "n_chroma": 12})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "seed"}, "kind must be 'rich'"),
        ({"hop_length": 2048}, "hop_length <= n_fft"),
        ({"n_fft": 0}, "must be positive"),
        ({"n_mfcc": 65}, "n_mfcc between 1 and n_mels"),
        ({"fmin_f0": 500.0}, "0 < fmin_f0 < fmax_f0"),
        ({"fmin_f0": 10.0}, "too low for n_fft"),
        ({"delta_width": 8}, "odd number"),
        ({"roll_percent": 1.0}, "strictly between 0 and 1"),
        ({"alpha_high_hz": 9000.0}, "alpha_low_hz and alpha_high_hz"),
        ({"contrast_bands": 7}, "exceed the Nyquist"),
        ({"voicing_threshold": 1.5}, "voicing_threshold must lie between 0 and 1"),
        ({"peak_tolerance": -0.1}, "peak_tolerance in"),
        ({"pitch_max_hz": 600.0}, "pitch_max_hz must lie between"),
        ({"top_db": -1.0}, "top_db and loud_db must be positive"),
        ({"min_seconds": 0.01}, "min_seconds"),
    ],
)
def test_invalid_configuration_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RichFeatureConfig(**change)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("mel", np.ones((40, 513)), "Filter 'mel' must have shape"),
        ("dct", None, "Filter 'dct' must have shape"),
        ("delta1", np.ones(7), "Filter 'delta1' must have shape"),
        ("contrast_bands", np.array([[0, 600, 1]] * 7), "band edges outside the spectrum"),
        ("contrast_bands", np.full((7, 3), 0.5), "band edges outside the spectrum"),
        ("mel", np.full((64, CONFIG.n_bins), np.nan), "NaN or infinite"),
    ],
)
def test_inconsistent_filters_are_refused(name: str, value: np.ndarray | None, message: str) -> None:
    pytest.importorskip("librosa")
    filters = build_rich_filters(CONFIG)
    if value is None:
        del filters[name]
    else:
        filters[name] = value
    with pytest.raises(ParameterError, match=message):
        RichFeatureExtractor(CONFIG, filters)


def test_clips_of_the_wrong_length_are_refused(extractor: RichFeatureExtractor) -> None:
    with pytest.raises(ParameterError, match=f"{N_SAMPLES} samples"):
        extractor(np.zeros(N_SAMPLES - 1, np.float32))
    with pytest.raises(ParameterError, match=f"{N_SAMPLES} samples"):
        extractor(np.zeros((2, 3, N_SAMPLES), np.float32))


# ------------------------------------------------------------ shapes, padding, edge cases


def test_batch_equals_one_clip_at_a_time(extractor: RichFeatureExtractor) -> None:
    clips = np.stack([centred(golden_content()), centred(harmonic_tone(200.0)), centred(harmonic_tone(90.0, 0.8))])
    batch = extractor(clips)
    assert batch.shape == (3, 1308) and batch.dtype == np.float32
    for clip, row in zip(clips, batch, strict=True):
        single = extractor(clip)
        assert single.shape == (1308,)
        np.testing.assert_array_equal(single, row)


def test_zero_padding_is_stripped_at_both_ends(extractor: RichFeatureExtractor) -> None:
    clip = centred(golden_content())
    shifted = np.roll(left_aligned(clip), 3000)  # same sound, other padding split
    np.testing.assert_array_equal(extractor(clip), extractor(shifted))
    assert extractor(clip)[index("duration_s")] == pytest.approx(1.6, abs=1 / SAMPLE_RATE)


def test_a_blip_is_analysed_over_at_least_a_quarter_second(extractor: RichFeatureExtractor) -> None:
    f = extractor(centred(harmonic_tone(200.0, seconds=0.1)))
    assert f[index("duration_s")] == pytest.approx(CONFIG.min_seconds)
    assert np.all(np.isfinite(f))


@pytest.mark.parametrize("kind", ["silence", "impulse", "full_scale_noise", "dc"])
def test_degenerate_clips_give_finite_features(extractor: RichFeatureExtractor, kind: str) -> None:
    clip = np.zeros(N_SAMPLES, np.float32)
    if kind == "impulse":
        clip[N_SAMPLES // 2] = 1.0
    elif kind == "full_scale_noise":
        clip = np.sign(np.random.default_rng(3).standard_normal(N_SAMPLES)).astype(np.float32)
    elif kind == "dc":
        clip[:] = 0.5
    f = extractor(clip)
    assert f.shape == (1308,) and np.all(np.isfinite(f))


# ------------------------------------------------------------ known answers


@pytest.mark.parametrize("f0", [100.0, 200.0, 330.0])
def test_harmonic_tone_pitch_is_its_fundamental_in_semitones(extractor: RichFeatureExtractor, f0: float) -> None:
    f = extractor(centred(harmonic_tone(f0)))
    expected = 12 * np.log2(f0 / 55.0)  # semitones re 55 Hz
    for name in ("f0_st_mean", "f0_st_p10", "f0_st_p50", "f0_st_p90"):
        assert f[index(name)] == pytest.approx(expected, abs=0.05), name
    assert f[index("f0_st_std")] < 0.05
    assert f[index("voiced_ratio")] > 0.9
    assert f[index("harm_voiced_mean")] > 0.8


def test_white_noise_is_unvoiced(extractor: RichFeatureExtractor) -> None:
    noise = np.random.default_rng(11).standard_normal(int(1.5 * SAMPLE_RATE))
    f = extractor(centred(noise))
    assert f[index("voiced_ratio")] < 0.05
    assert f[index("harm_mean")] < 0.3
    assert f[index("zcr_mean")] == pytest.approx(0.5, abs=0.05)  # independent samples change sign half the time


def test_voiced_segments_are_counted(extractor: RichFeatureExtractor) -> None:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    gate = (np.floor(t * 4) % 2 == 0).astype(float)  # 4 bursts of 0.25 s, silent gaps between
    f = extractor(centred(harmonic_tone(150.0, 2.0) * gate + 1e-4 * np.random.default_rng(5).standard_normal(t.size)))
    duration = f[index("duration_s")]
    assert f[index("voiced_onset_rate")] * duration == pytest.approx(3, abs=0.5)  # the first burst starts voiced
    assert f[index("voiced_ratio")] == pytest.approx(0.5, abs=0.1)


def test_pure_tone_centroid_sits_at_the_tone(extractor: RichFeatureExtractor) -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    f = extractor(centred(np.sin(2 * np.pi * 1500.0 * t)))
    assert f[index("centroid_p50")] == pytest.approx(1.5, abs=0.01)  # kHz
    assert f[index("rolloff_p50")] == pytest.approx(1.5, abs=2 * SAMPLE_RATE / CONFIG.n_fft / 1000)
    assert f[index("rms_db_p50")] == pytest.approx(20 * np.log10(np.sqrt(0.5)), abs=0.05)  # full-scale sine


# ------------------------------------------------------------ pieces against librosa


def test_pitch_agrees_with_librosa_yin_on_voiced_frames(extractor: RichFeatureExtractor) -> None:
    """The autocorrelation tracker and librosa's YIN, two different methods, name the same pitch
    on a gliding voice: within a quarter semitone on at least 95% of the frames the extractor
    calls voiced (an octave error would be 12 semitones off)."""
    import librosa

    y = left_aligned(centred(golden_content()))[: int(1.6 * SAMPLE_RATE)]
    ref = librosa.yin(y, fmin=CONFIG.fmin_f0, fmax=CONFIG.fmax_f0, sr=SAMPLE_RATE,
                      frame_length=CONFIG.n_fft, hop_length=CONFIG.hop_length, center=True)  # fmt: skip
    padded = np.pad(y.astype(np.float64), CONFIG.n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, CONFIG.n_fft)[:: CONFIG.hop_length]
    power = np.abs(np.fft.rfft(frames * extractor._window, axis=1)) ** 2
    harm, f0 = extractor._periodicity(power)
    voiced = harm > CONFIG.voicing_threshold
    assert voiced.mean() > 0.8
    off = np.abs(12 * np.log2(f0[voiced] / ref[voiced]))
    assert np.mean(off < 0.25) >= 0.95, np.percentile(off, [50, 90, 99])


def test_missing_fundamental_is_still_the_pitch(extractor: RichFeatureExtractor) -> None:
    """Harmonics 2-7 of 110 Hz and no energy at 110 Hz: the period is still 1/110 s, not half."""
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    f = extractor(centred(sum(np.sin(2 * np.pi * k * 110.0 * t) / k for k in range(2, 8))))
    assert f[index("f0_st_p50")] == pytest.approx(12 * np.log2(110.0 / 55.0), abs=0.1)


def test_periodic_frames_score_near_one_and_noise_near_zero(extractor: RichFeatureExtractor) -> None:
    """The window's own autocorrelation is divided out, so a steady periodic sound scores about 1."""
    for f0 in (70.0, 140.0, 450.0):
        f = extractor(centred(harmonic_tone(f0)))
        assert 0.9 < f[index("harm_p25")] < 1.05, f0
    noise = extractor(centred(np.random.default_rng(4).standard_normal(SAMPLE_RATE)))
    assert noise[index("harm_p75")] < 0.3


def test_contrast_and_deltas_match_librosa(extractor: RichFeatureExtractor) -> None:
    import librosa

    y = golden_content()
    S = np.abs(librosa.stft(y, n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length)).astype(np.float64)
    ref = librosa.feature.spectral_contrast(S=S, sr=SAMPLE_RATE, n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length)
    np.testing.assert_allclose(extractor._contrast(S.T**2), ref, rtol=1e-10, atol=1e-9)  # it takes powers

    from ser_core.features.rich import _filter_nearest

    x = np.random.default_rng(2).standard_normal((5, 40))
    for order, kernel in ((1, extractor._delta1), (2, extractor._delta2)):
        expected = librosa.feature.delta(x, width=CONFIG.delta_width, order=order, mode="nearest")
        np.testing.assert_allclose(_filter_nearest(x, kernel), expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ the research extractor and the golden vector


def research_clips() -> list[np.ndarray]:
    clips = [centred(golden_content()), centred(harmonic_tone(200.0)), centred(harmonic_tone(120.0, 0.1))]
    files = sorted(RAVDESS.glob("Actor_02/*.flac"))[::12][:4]
    if files:
        import soundfile as sf

        from ser_core.audio import to_clip, trim_silence

        for path in files:
            y, _ = sf.read(path, dtype="float32")
            clips.append(to_clip(trim_silence(y)))
    return clips


def test_port_matches_the_research_extractor(research_extractor: RichFeatureExtractor) -> None:
    """Every entry but the pitch and voicing ones (see the module docstring)."""
    research = load_research()
    for clip in research_clips():
        assert_close(research_extractor(clip), research.extract(left_aligned(clip), SAMPLE_RATE, extended=True))


def test_golden_vector(research_extractor: RichFeatureExtractor) -> None:
    """The research extractor's output for the golden clip, stored when the port was made
    (all entries but the pitch and voicing ones, see the module docstring)."""
    golden = np.load(GOLDEN)
    assert golden.shape == (1308,)
    assert_close(research_extractor(centred(golden_content())), golden)


def test_inference_imports_nothing_but_numpy(tmp_path: Path) -> None:
    """Filters saved to .npz and loaded back: computing features pulls in no librosa, scipy,
    numba, sklearn or tensorflow (the command line's cold start depends on it)."""
    pytest.importorskip("librosa")
    np.savez(tmp_path / "filters.npz", **build_rich_filters(CONFIG))
    code = f"""
import sys, numpy as np
import ser_core.audio, ser_core.errors
before = set(sys.modules)
from ser_core.features.rich import RichFeatureConfig, RichFeatureExtractor
with np.load({str(tmp_path / "filters.npz")!r}) as data:
    ex = RichFeatureExtractor(RichFeatureConfig(), dict(data))
f = ex(np.sin(np.arange({N_SAMPLES}) * 0.05).astype(np.float32))
assert f.shape == (1308,)
new = {{m.split(".")[0] for m in set(sys.modules) - before}}
print(sorted(new & {{"librosa", "scipy", "numba", "sklearn", "tensorflow", "keras"}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def regenerate() -> None:
    if not RESEARCH.is_file():
        sys.exit(f"The research code is not at {RESEARCH}; the golden vector cannot be regenerated here.")
    spec = importlib.util.spec_from_file_location("research_rich_features", RESEARCH)
    research = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(research)
    golden = research.extract(left_aligned(centred(golden_content())), SAMPLE_RATE, extended=True)
    GOLDEN.parent.mkdir(exist_ok=True)
    np.save(GOLDEN, golden.astype(np.float32))
    print(f"wrote {GOLDEN} ({golden.size} features)")


if __name__ == "__main__":
    if "--regenerate" in sys.argv:
        regenerate()
    else:
        sys.exit("usage: tests/test_features_rich.py --regenerate")
