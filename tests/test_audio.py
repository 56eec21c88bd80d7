"""The audio boundary: each preprocessing step alone, every validation rule, every format."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like
from corpus import ENCODED

from ser_core import audio
from ser_core.errors import AudioError, ParameterError, SERError

SR = audio.SAMPLE_RATE


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def dominant_frequency(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[np.argmax(spectrum)])


# ---------------------------------------------------------------- as_float


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (np.array([-128, 0, 64, 127], np.int8), [-1.0, 0.0, 0.5, 127 / 128]),
        (np.array([0, 128, 192, 255], np.uint8), [-1.0, 0.0, 0.5, 127 / 128]),
        (np.array([-32768, 0, 16384, 32767], np.int16), [-1.0, 0.0, 0.5, 32767 / 32768]),
        (np.array([-(2**31), 0, 2**30], np.int32), [-1.0, 0.0, 0.5]),
        (np.array([0.25, -3.0, 0.0], np.float64), [0.25, -3.0, 0.0]),
        (np.array([0.5, -0.5], ">f4"), [0.5, -0.5]),
        ([0.1, -0.2], [0.1, -0.2]),
    ],
    ids=["int8", "uint8", "int16", "int32", "float64", "big-endian-float32", "list"],
)
def test_as_float_scales_by_type(samples, expected):
    y = audio.as_float(samples)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)


def test_as_float_keeps_shape():
    assert audio.as_float(np.zeros((5, 2), np.int16)).shape == (5, 2)


@pytest.mark.parametrize(
    "samples",
    [np.array([True, False]), np.array([1 + 2j]), np.array(["a", "b"]), np.array([object()]), [[1, 2], [3]], b"RIFF"],
    ids=["bool", "complex", "str", "object", "ragged", "bytes"],
)
def test_as_float_rejects_non_numeric(samples):
    with pytest.raises(AudioError, match="not supported|cannot be read as one array"):
        audio.as_float(samples)


# ---------------------------------------------------------------- to_mono


def test_to_mono_keeps_1d():
    y = np.arange(10, dtype=np.float32)
    assert audio.to_mono(y) is y


def test_to_mono_averages_samples_by_channels():
    y = np.stack([np.ones(100), -np.ones(100) * 0.5], axis=1).astype(np.float32)  # (n, ch)
    out = audio.to_mono(y)
    assert out.shape == (100,)
    np.testing.assert_allclose(out, 0.25)


def test_to_mono_reads_channels_by_samples():
    y = np.stack([np.ones(100), np.zeros(100)]).astype(np.float32)  # (ch, n)
    np.testing.assert_allclose(audio.to_mono(y), np.full(100, 0.5))


def test_to_mono_of_huge_finite_samples_stays_finite():
    y = np.full((10, 2), 3e38, np.float32)
    out = audio.to_mono(y)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


def test_to_mono_single_channel_column():
    y = np.arange(20, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(audio.to_mono(y), np.arange(20))


@pytest.mark.parametrize(
    ("shape", "match"),
    [((2, 3, 4), "1-D or 2-D"), ((), "1-D or 2-D"), ((10, 0), "no channels"), ((0, 20), "no channels")],
)
def test_to_mono_rejects_shapes(shape, match):
    with pytest.raises(AudioError, match=match):
        audio.to_mono(np.zeros(shape, np.float32))


# ---------------------------------------------------------------- resample


@pytest.mark.parametrize("sr", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000])
def test_resample_length_ratio(sr):
    y = tone(440, 2.0, sr)
    out = audio.resample(y, sr=sr)
    assert out.dtype == np.float32
    assert abs(out.size - round(y.size * SR / sr)) <= 1


@pytest.mark.parametrize("sr", [8_000, 44_100, 48_000])
def test_resample_keeps_tone_frequency(sr):
    out = audio.resample(tone(1000.0, 1.0, sr), sr=sr)
    assert dominant_frequency(out, SR) == pytest.approx(1000.0, abs=2.0)
    assert np.max(np.abs(out)) == pytest.approx(0.5, rel=0.05)


def test_resample_same_rate_is_identity():
    y = tone(300, 0.5, SR)
    np.testing.assert_array_equal(audio.resample(y, sr=SR), y)


# ---------------------------------------------------------------- frame_rms


@pytest.mark.parametrize(("frame_length", "hop_length"), [(1024, 256), (800, 320), (400, 160)])
def test_frame_rms_matches_librosa(frame_length, hop_length):
    """Both ways of summing the frames (whole hops, or each frame on its own) give librosa's RMS."""
    librosa = pytest.importorskip("librosa")
    y = speech_like(2.3, SR)
    ours = audio.frame_rms(y, frame_length=frame_length, hop_length=hop_length)
    ref = librosa.feature.rms(
        y=y.astype(np.float64), frame_length=frame_length, hop_length=hop_length, center=True, pad_mode="constant"
    )[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-6)  # librosa frames and sums its own way


def test_frame_rms_keeps_quiet_frames_after_loud_ones():
    """A frame 120 dB below the loudest one keeps its level: it is summed on its own, not read off
    a running sum that has already grown by the loud frames."""
    y = np.concatenate([np.ones(SR), np.full(SR, 1e-6)]).astype(np.float32)
    rms = audio.frame_rms(y, frame_length=800, hop_length=320)
    np.testing.assert_allclose(rms[-10:-3], 1e-6, rtol=1e-6)  # the last frames reach into the zero padding


# ---------------------------------------------------------------- trim_silence


@pytest.mark.parametrize(("lead", "tail"), [(0.5, 0.7), (0.0, 1.0), (1.2, 0.0)])
def test_trim_silence_removes_known_silence(lead, tail):
    voiced = tone(220, 1.0, SR)
    y = np.concatenate([np.zeros(int(lead * SR)), voiced, np.zeros(int(tail * SR))]).astype(np.float32)
    out = audio.trim_silence(y)
    frame = audio.TRIM_FRAME_LENGTH
    assert voiced.size <= out.size <= voiced.size + 2 * frame
    assert np.sum(out.astype(np.float64) ** 2) == pytest.approx(np.sum(voiced.astype(np.float64) ** 2), rel=1e-6)


def test_trim_silence_of_silence_is_empty():
    assert audio.trim_silence(np.zeros(SR, np.float32)).size == 0


def test_trim_silence_keeps_quiet_speech_within_top_db():
    y = np.concatenate([tone(220, 0.5, SR), tone(220, 0.5, SR, amplitude=0.05)])  # -20 dB: kept
    assert audio.trim_silence(y).size >= y.size - audio.TRIM_FRAME_LENGTH


# ---------------------------------------------------------------- normalize, fix_length


@pytest.mark.parametrize("peak", [1.0, 0.5])
def test_normalize_sets_peak(peak, rng):
    y = (0.01 * rng.standard_normal(1000)).astype(np.float32)
    out = audio.normalize(y, peak=peak)
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.max(np.abs(out)) == pytest.approx(peak, rel=1e-6)
    np.testing.assert_allclose(out / np.max(np.abs(out)), y / np.max(np.abs(y)), rtol=1e-5)


def test_normalize_leaves_zeros():
    np.testing.assert_array_equal(audio.normalize(np.zeros(10, np.float32)), np.zeros(10))


@pytest.mark.parametrize(("size", "n", "before"), [(10, 20, 5), (11, 20, 4), (0, 7, 3), (20, 20, 0)])
def test_fix_length_pads_centred(size, n, before):
    y = np.ones(size, np.float32)
    out = audio.fix_length(y, n_samples=n)
    assert out.shape == (n,)
    np.testing.assert_array_equal(np.flatnonzero(out), np.arange(before, before + size))


@pytest.mark.parametrize(("size", "n"), [(30, 20), (31, 20), (100_000, audio.N_SAMPLES)])
def test_fix_length_crops_centred(size, n):
    out = audio.fix_length(np.arange(size, dtype=np.float32), n_samples=n)
    start = (size - n) // 2
    np.testing.assert_array_equal(out, np.arange(start, start + n))


def test_to_clip_is_normalised_and_fixed_length(speech):
    clip = audio.to_clip(audio.check_speech(speech))
    assert clip.shape == (audio.N_SAMPLES,)
    assert np.max(np.abs(clip)) == pytest.approx(audio.PEAK_LEVEL)


# ---------------------------------------------------------------- check_speech and validation rules


def test_check_speech_returns_trimmed(speech):
    out = audio.check_speech(speech)
    assert 0.3 * SR < out.size < speech.size


@pytest.mark.parametrize(
    ("signal", "match"),
    [
        (np.zeros(SR, np.float32), "silent"),
        (np.full(SR, 1e-6, np.float32), "silent"),
        (speech_like(2.0)[SR // 2 : SR // 2 + SR // 50], "too short"),
        (np.concatenate([np.zeros(SR), tone(300, 0.1, SR), np.zeros(SR)]), "too short"),
    ],
    ids=["digital-silence", "below-80-dBFS", "20-ms", "100-ms-between-silence"],
)
def test_check_speech_rejects(signal, match):
    with pytest.raises(AudioError, match=match):
        audio.check_speech(signal)


@pytest.mark.parametrize(
    ("rate", "error", "match"),
    [
        (0, AudioError, "not usable"),
        (-16_000, AudioError, "not usable"),
        (1, AudioError, "not usable"),
        (3_999, AudioError, "between 4000 and 768000"),
        (3_000_000_000, AudioError, "not usable"),
        (16_000.5, AudioError, "not usable"),
        (float("nan"), AudioError, "not usable"),
        (float("inf"), AudioError, "not usable"),
        ("fast", ParameterError, "not a number"),
        (None, ParameterError, "not a number"),
    ],
)
def test_sample_rate_rule(rate, error, match):
    with pytest.raises(error, match=match):
        audio.prepare(speech_like(1.0), rate)


@pytest.mark.parametrize("rate", [4_000, 16_000, np.int64(44_100), 48_000.0, 768_000])
def test_sample_rate_accepted(rate):
    assert audio.validate_sample_rate(rate) == int(rate)


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2], np.float32), "NaN or infinite"),
        (np.array([0.1, np.inf], np.float64), "NaN or infinite"),
        (np.array([1e300, -1e300]), "NaN or infinite"),  # overflows float32
        (np.array([0.1, 2.9e38, -0.2] * 100, np.float32), "far outside the range"),  # would overflow resampling
        (np.zeros((2, 2, 2), np.float32), "1-D or 2-D"),
        (np.array([1 + 1j]), "not supported"),
    ],
    ids=["empty", "nan", "inf", "overflow", "huge", "3-D", "complex"],
)
def test_signal_rule(samples, match):
    with pytest.raises(AudioError, match=match):
        audio.prepare(samples, SR)


def test_prepare_output(speech):
    stereo = np.stack([speech, speech], axis=1)
    out = audio.prepare((stereo * 32767).astype(np.int16), 48_000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - round(speech.size / 3)) <= 1


def test_every_error_is_a_sererror():
    for cls in (AudioError, ParameterError):
        assert issubclass(cls, SERError)


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("problem", "match"),
    [
        ("missing", "does not exist"),
        ("folder", "is a folder"),
        ("empty", "empty \\(0 bytes\\)"),
        ("text", "could not be decoded"),
        ("no-frames", "no audio samples"),
    ],
)
def test_decode_rule(tmp_path, problem, match):
    path = tmp_path / "x.wav"
    if problem == "folder":
        path.mkdir()
    elif problem == "empty":
        path.write_bytes(b"")
    elif problem == "text":
        path.write_text("hello " * 100)
    elif problem == "no-frames":
        sf.write(str(path), np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match=match) as info:
        audio.load(path)
    if problem != "no-frames":
        assert "x.wav" in str(info.value)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"])
@pytest.mark.parametrize(("sr", "channels"), [(8_000, 1), (16_000, 2), (44_100, 1), (48_000, 6), (96_000, 2)])
def test_decode_wav_any_rate_depth_channels(tmp_path, subtype, sr, channels):
    y = tone(500.0, 1.0, sr)
    path = tmp_path / "t.wav"
    sf.write(str(path), np.repeat(y[:, None], channels, axis=1), sr, subtype=subtype)
    out = audio.load(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - SR) <= 2
    assert dominant_frequency(out, SR) == pytest.approx(500.0, abs=2.0)
    assert np.max(np.abs(out)) == pytest.approx(0.5, rel=0.06)


@pytest.mark.parametrize("fmt", sorted(ENCODED))
def test_decode_compressed_formats(tmp_path, fmt):
    filename, write = ENCODED[fmt]
    y = tone(500.0, 2.0, SR)
    out = audio.load(write(tmp_path / filename, y, SR))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert abs(out.size / SR - 2.0) < 0.15  # codec priming/padding (AAC: 0.11 s), not a lost or doubled second
    assert dominant_frequency(out, SR) == pytest.approx(500.0, abs=3.0)


@pytest.mark.parametrize("sr", [22_050, 44_100])
def test_stream_blocks_match_decode(tmp_path, sr):
    path = tmp_path / "long.flac"
    y = np.tile(speech_like(5.0, sr), 5)  # 27.5 s
    sf.write(str(path), y, sr)
    blocks = list(audio.stream(path, block_seconds=4.0))
    assert len(blocks) >= 7  # decoded incrementally, ~4 s at a time
    assert max(b.size for b in blocks) <= 4.0 * SR + 1024
    joined = np.concatenate(blocks)
    assert abs(joined.size - round(y.size * SR / sr)) <= 2
    np.testing.assert_allclose(joined, audio.load(path), atol=1e-6)


@pytest.mark.parametrize(
    ("fmt", "subtype", "channels"),
    [("WAV", "PCM_16", 1), ("WAV", "PCM_16", 2), ("FLAC", "PCM_16", 1), ("WAV", "PCM_24", 1), ("FLAC", "PCM_24", 2)],
)
def test_16_bit_files_decode_to_libsndfiles_own_floats(tmp_path, fmt, subtype, channels):
    """16-bit files take a faster path (int16 read, scaled by NumPy): every sample is what
    libsndfile's float conversion gives, full scale and the most negative value included."""
    rng = np.random.default_rng(7)
    y = rng.integers(-32768, 32768, size=(SR, channels), dtype=np.int64)
    y[:4, 0] = (-32768, 32767, 0, -1)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(path), (y / 32768.0).astype(np.float64), SR, format=fmt, subtype=subtype)
    expected, _ = sf.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(audio.load(path), audio.to_mono(expected))


def test_decode_file_equals_prepare_array(tmp_path, speech):
    path = tmp_path / "s.wav"
    sf.write(str(path), speech, 44_100, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path), audio.prepare(speech, 44_100), atol=1e-4)


def test_decode_max_seconds(tmp_path):
    path = tmp_path / "s.wav"
    sf.write(str(path), np.zeros(30 * SR, np.int16), SR)
    with pytest.raises(AudioError, match="longer than 12 s"):
        audio.load(path, max_seconds=12)


@pytest.mark.parametrize("seconds", [0.5, 9.0, 25.0])  # one decoded block (one-shot resampling), and several
def test_stream_resamples_one_block_and_many_to_the_same_samples(tmp_path, seconds):
    """A short file is resampled in one call, a long one through soxr's stream: the samples agree
    with resampling the whole signal at once, so where the block boundary falls never matters."""
    path = tmp_path / "s.wav"
    y = speech_like(seconds, 44_100)
    sf.write(str(path), y, 44_100, subtype="FLOAT")
    joined = np.concatenate(list(audio.stream(path, block_seconds=10.0)))
    np.testing.assert_array_equal(joined, audio.resample(y, sr=44_100))
