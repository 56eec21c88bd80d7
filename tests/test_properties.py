"""Property-based tests of the array boundary: whatever comes in, a verdict or an SERError.

Arbitrary dtypes, shapes, layouts, rates, lengths, levels and NaN/inf injections are
drawn by hypothesis (derandomised, so CI runs the same examples every time).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import speech_like
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ser_core import EMOTIONS, EmotionClassifier, audio
from ser_core.errors import SERError

SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def bounded(max_examples: int) -> settings:
    return settings(SETTINGS, max_examples=max_examples)


NUMERIC = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.float16, np.float32, np.float64]
ODD = [np.bool_, np.complex64, np.dtype("<U3"), np.dtype("M8[s]")]
RATES = st.one_of(
    st.sampled_from([8_000, 11_025, 16_000, 22_050, 44_100, 48_000]),
    st.integers(-1_000, 2_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def signals(draw) -> tuple[object, object]:
    """(samples, sample_rate): mostly plausible audio bent in every way, sometimes raw garbage."""
    mode = draw(st.sampled_from(["plausible"] * 6 + ["odd rate", "raw array"]))
    rate = draw(RATES if mode == "odd rate" else st.sampled_from([8_000, 11_025, 16_000, 22_050, 44_100, 48_000]))
    if mode == "raw array":  # any dtype, shape and element
        dtype = draw(st.sampled_from(NUMERIC + ODD))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=400))
        return draw(hnp.arrays(dtype, shape)), rate
    gen_rate = int(rate) if isinstance(rate, int) and 4_000 <= rate <= 48_000 else 16_000
    seconds = draw(st.one_of(st.floats(0.0, 6.0), st.sampled_from([0.5, 1.0, 2.0, 3.5, 5.0])))
    kind = draw(st.sampled_from(["speech", "noise", "tone", "zeros", "constant", "click"]))
    n = int(seconds * gen_rate)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "speech":
        y = speech_like(max(seconds - 0.5, 0.0), gen_rate, seed=int(rng.integers(100)))[:n]
    elif kind == "noise":
        y = rng.standard_normal(n)
    elif kind == "tone":
        y = np.sin(2 * np.pi * draw(st.floats(20, 20_000)) * np.arange(n) / gen_rate)
    elif kind == "zeros":
        y = np.zeros(n)
    elif kind == "constant":
        y = np.ones(n)
    else:
        y = np.zeros(n)
        if n:
            y[n // 2] = 1.0
    y = np.asarray(y, np.float64) * draw(st.sampled_from([1e-9, 1e-5, 0.01, 0.5, 1.0, 50.0, 1e30]))
    if n and draw(st.booleans()) and draw(st.booleans()):
        y[int(rng.integers(n))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    channels = draw(st.integers(1, 3))
    if channels > 1:
        y = np.stack([y if c == 0 or draw(st.booleans()) else np.zeros_like(y) for c in range(channels)], axis=1)
        if draw(st.booleans()):
            y = y.T
    dtype = draw(st.sampled_from(NUMERIC))
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = (np.nan_to_num(y, posinf=1, neginf=-1).clip(-1, 1) + (np.dtype(dtype).kind == "u")) * (
                info.max // (1 + (np.dtype(dtype).kind == "u"))
            )
            y = scaled.astype(dtype)
    else:
        with np.errstate(over="ignore"):
            y = y.astype(dtype)
    if draw(st.booleans()) and y.ndim == 1 and y.size > 2:
        y = y[::2]  # a strided view
    return y, rate


@pytest.fixture(scope="module")
def clf(bundle_dir) -> EmotionClassifier:
    return EmotionClassifier.load(bundle_dir)


@bounded(150)
@given(case=signals())
def test_predict_classifies_or_raises_sererror(clf, case):
    samples, rate = case
    try:
        p = clf.predict(samples, rate)
    except SERError as e:
        event(f"error: {' '.join(str(e).split()[:4])}")
        message = str(e)
        assert message and "\n" not in message and message.endswith(".")
        return
    event("classified")
    assert p.emotion in EMOTIONS and list(p.probabilities) == list(EMOTIONS)
    assert all(math.isfinite(v) for v in p.probabilities.values())
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert p.confidence == max(p.probabilities.values())


@bounded(200)
@given(case=signals())
def test_prepare_returns_clean_signal_or_raises_sererror(case):
    samples, rate = case
    try:
        y = audio.prepare(samples, rate)
    except SERError:
        return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.all(np.isfinite(y))
    try:
        speech = audio.check_speech(y)
    except SERError:
        return
    clip = audio.to_clip(speech)
    assert clip.shape == (audio.N_SAMPLES,) and np.all(np.isfinite(clip))
    peak = np.max(np.abs(clip))
    assert peak <= audio.PEAK_LEVEL * (1 + 1e-6)
    if speech.size <= audio.N_SAMPLES:  # longer speech is cropped, and its peak may be outside the crop
        assert peak == pytest.approx(audio.PEAK_LEVEL, rel=1e-5)


@bounded(100)
@given(size=st.integers(0, 5_000), n=st.integers(1, 3_000))
def test_fix_length_is_exact_and_centred(size, n):
    y = np.arange(1, size + 1, dtype=np.float32)
    out = audio.fix_length(y, n_samples=n)
    assert out.shape == (n,)
    kept = out[out != 0]
    assert np.all(np.diff(kept) == 1)  # one contiguous stretch of the input
    if size:
        left = int(np.argmax(out != 0)) if size <= n else 0
        right = n - left - kept.size
        lost_left = int(kept[0]) - 1
        lost_right = size - int(kept[-1])
        assert abs(left - right) <= 1 and abs(lost_left - lost_right) <= 1


@bounded(100)
@given(y=hnp.arrays(np.float32, st.integers(1, 3_000), elements=st.floats(-1e6, 1e6, width=32)))
def test_trim_then_normalize(y):
    trimmed = audio.trim_silence(y)
    assert trimmed.size <= y.size
    if trimmed.size:
        assert np.abs(trimmed).max() == np.abs(y).max()  # the loudest part is never cut
        out = audio.normalize(trimmed)
        assert np.max(np.abs(out)) == pytest.approx(1.0, rel=1e-5) or np.max(np.abs(trimmed)) == 0
