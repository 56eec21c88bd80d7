"""Speaker adaptation: the Voice, the relative features, the same-speaker voice, and the
classifier's adapted path on the shipped bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import speech_like

from ser_core.errors import AudioError, ParameterError
from ser_core.inference.voice import Voice, dominant_share, relative, same_speaker_mean

SR = 16_000


def voice(n: int = 5, **kw) -> Voice:
    return Voice(**{"mean": np.arange(n, dtype=np.float32), "clips": 3, "seconds": 7.5, "features": "abc", **kw})


def test_voice_round_trips_through_json_and_holds_no_audio():
    v = voice()
    text = v.to_json()
    again = Voice.from_json(text)
    assert np.array_equal(again.mean, v.mean) and (again.clips, again.seconds) == (3, 7.5)
    assert again.features == "abc" and again.source == "reference"
    assert set(json.loads(text)) == {"format", "features", "source", "clips", "seconds", "mean"}


def test_a_voice_saved_before_its_mean_was_renamed_still_reads():
    old = {"format": 1, "features": "abc", "source": "reference", "clips": 3, "seconds": 7.5, "reference": [1.0, 2.0]}
    assert Voice.from_dict(old).mean.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ('{"format": 99}', "not a saved voice of this version"),
        ('{"format": 1, "features": "abc"}', "incomplete or damaged"),
        ('{"format": 1, "features": "a", "clips": 1, "seconds": 1, "reference": [1, NaN]}', "finite numbers"),
    ],
)
def test_damaged_voice_is_one_sentence(text, match):
    with pytest.raises(ParameterError, match=match):
        Voice.from_json(text)


def test_relative_features():
    x = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    ref = np.array([1.0, 1.0], np.float32)
    np.testing.assert_array_equal(relative(x, ref, "offset"), [[0, 1], [2, 4]])
    np.testing.assert_array_equal(relative(x, ref, "concat"), [[1, 2, 0, 1], [3, 5, 2, 4]])
    with pytest.raises(ParameterError, match="Unknown adaptation mode"):
        relative(x, ref, "ratio")


def test_baseline_is_the_session_mean_unless_one_emotion_dominates(rng):
    features = rng.normal(0.0, 1.0, (20, 4))
    mixed = np.eye(7)[np.arange(20) % 7]  # verdicts spread over all seven classes
    np.testing.assert_allclose(same_speaker_mean(features, mixed), features.mean(axis=0), rtol=1e-6)
    angry_call = np.eye(7)[[3] * 12 + [0, 1, 2, 4, 5, 6, 0, 1]]  # 12 of 20 won by one class
    assert dominant_share(angry_call) == 0.6
    assert same_speaker_mean(features, angry_call) is None
    assert same_speaker_mean(features[:7], mixed[:7]) is None  # too little speech to show a range


# ---------------------------------------------------------------- the classifier's calibrated path


@pytest.fixture(scope="module")
def calibrated(classifier):
    if not classifier.adapted:
        pytest.skip("the shipped bundle has no adapted models")
    return classifier


def test_calibrate_builds_a_voice_from_speech(calibrated):
    v = calibrated.calibrate([speech_like(4.0, SR, seed=1), speech_like(3.0, SR, seed=2)], SR)
    assert v.source == "reference" and v.features == calibrated.fingerprint
    assert v.clips >= 2 and 6.0 < v.seconds < 8.0
    assert v.mean.shape == (calibrated.extractor.n_features,)


def test_a_calibrated_verdict_uses_the_voice(calibrated):
    y = speech_like(3.0, SR, seed=5)
    plain = calibrated.predict(y, SR)
    a = calibrated.predict(y, SR, voice=calibrated.calibrate(speech_like(3.0, SR, seed=6), SR))
    b = calibrated.predict(y, SR, voice=calibrated.calibrate(speech_like(3.0, SR, f0=220.0, seed=7), SR))
    assert a.probabilities != b.probabilities and a.probabilities != plain.probabilities
    assert sum(a.probabilities.values()) == pytest.approx(1.0)


def test_the_same_voice_through_json_gives_the_same_verdict(calibrated):
    v = calibrated.calibrate(speech_like(3.0, SR, seed=6), SR)
    y = speech_like(3.0, SR, seed=5)
    assert calibrated.predict(y, SR, voice=Voice.from_json(v.to_json())) == calibrated.predict(y, SR, voice=v)


def test_timeline_with_a_voice_matches_predict_per_window(calibrated):
    v = calibrated.calibrate(speech_like(3.0, SR, seed=6), SR)
    y = speech_like(3.0, SR, seed=5)
    t = calibrated.timeline(y, SR, voice=v)
    assert t.windows[0].prediction == calibrated.predict(y, SR, voice=v)


def test_silent_reference_is_refused(calibrated):
    with pytest.raises(AudioError, match="reference recordings hold no usable speech"):
        calibrated.calibrate([np.zeros(SR * 2, np.float32)], SR)


def test_a_voice_from_other_features_is_refused(calibrated):
    v = voice(calibrated.extractor.n_features)
    with pytest.raises(ParameterError, match="another model's features"):
        calibrated.predict(speech_like(2.0, SR), SR, voice=v)


def test_same_speaker_adaptation_declines_a_one_sided_session(calibrated):
    """Eight copies of one clip: every verdict is the same emotion, so the session is judged
    without adaptation rather than made the speaker's normal."""
    assert calibrated.adapt([speech_like(3.0, SR, seed=1)] * 8, SR) is None


def test_same_speaker_adaptation_of_a_mixed_session(calibrated, ravdess_files):
    """One actor in seven emotions: a session that mixes emotions is adapted to."""
    v = calibrated.adapt(ravdess_files)
    assert v is not None and v.source == "same-speaker" and v.clips >= 8
    verdict = calibrated.predict(ravdess_files[0], voice=v)
    assert verdict != calibrated.predict(ravdess_files[0])
