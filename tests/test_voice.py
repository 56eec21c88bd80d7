"""Speaker adaptation: the Voice (sums of features that grow, JSON), the statistics the training
population turns it into, and the classifier's adapted path on the shipped bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import speech_like

from ser_core.errors import AudioError, ParameterError
from ser_core.inference.voice import MIN_SESSION_CLIPS, MIN_SESSION_SECONDS, Moments, Population, Voice

SR = 16_000
D = 4  # features in the synthetic tests
CLASSES = 7


def population(**kw) -> Population:
    base = dict(
        spread=np.full(D, 2.0),
        ratio=np.full(D, 1.5),
        offsets=np.zeros((CLASSES, D)),
        centre=np.zeros(D),
        k_reference=np.full(D, 1.0),
        k_session=np.full(D, 4.0),
    )
    return Population(**{**base, **kw})


def session(n: int, seconds: float, rng, probabilities=None) -> Voice:
    rows = rng.normal(3.0, 1.0, (n, D))
    heard = np.full((n, CLASSES), 1 / CLASSES) if probabilities is None else probabilities
    return Voice("abc").with_session(rows, heard, seconds, recordings=n)


# ---------------------------------------------------------------- the voice itself


def test_sums_grow_and_give_the_rows_mean_and_spread(rng):
    rows = rng.normal(1.0, 2.0, (30, D))
    grown = Moments.of(rows[:10]) + Moments.of(rows[10:])
    np.testing.assert_allclose(grown.mean, rows.mean(axis=0))
    np.testing.assert_allclose(grown.std(), rows.std(axis=0, ddof=1))
    assert Moments.of(rows[:1]).std() is None  # one clip has no spread


def test_voice_round_trips_through_json_and_holds_no_rows(rng):
    v = Voice("abc").with_reference(rng.normal(size=(3, D)), 7.5)
    v = v.with_session(rng.normal(size=(20, D)), np.full((20, CLASSES), 1 / 7), 40.0, recordings=9)
    data = json.loads(v.to_json())
    assert set(data) == {"format", "features", "source", "reference", "session"}
    assert data["session"]["count"] == 20 and len(data["session"]["sum"]) == D  # sums, never the 20 rows
    again = Voice.from_json(v.to_json())
    assert again.reference.count == 3 and again.recordings == 9 and again.session_seconds == 40.0
    np.testing.assert_allclose(again.session.mean, v.session.mean)
    np.testing.assert_allclose(again.reference.std(), v.reference.std())


def test_a_voice_saved_in_the_first_format_still_reads():
    old = {"format": 1, "features": "abc", "source": "reference", "clips": 3, "seconds": 7.5, "reference": [1.0, 2.0]}
    v = Voice.from_dict(old)
    assert v.source == "reference" and v.reference.count == 3 and v.reference.std() is None
    np.testing.assert_allclose(v.reference.mean, [1.0, 2.0])
    assert Voice.from_dict({**old, "mean": old.pop("reference")}).reference.count == 3


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ('{"format": 99}', "not a saved voice of this version"),
        ('{"format": 2, "features": "abc", "reference": {"count": 1}}', "incomplete or damaged"),
        ('{"format": 2, "features": "a", "reference": {"count": 1, "sum": [1, NaN], "seconds": 1}}', "finite"),
        (
            '{"format": 2, "features": "a", "session": {"count": 1, "sum": [1], "seconds": 1, "recordings": 1}}',
            "damaged",
        ),
    ],
)
def test_damaged_voice_is_one_sentence(text, match):
    with pytest.raises(ParameterError, match=match):
        Voice.from_json(text)


def test_a_session_is_used_only_from_enough_speech(rng):
    assert Voice("abc").source is None
    assert session(MIN_SESSION_CLIPS - 1, 100.0, rng).source is None  # too few clips
    assert session(MIN_SESSION_CLIPS, MIN_SESSION_SECONDS - 1, rng).source is None  # too little speech
    ready = session(MIN_SESSION_CLIPS, MIN_SESSION_SECONDS, rng)
    assert ready.source == "same-speaker" and "Adapted to your voice" in ready.describe()
    assert "Learning your voice" in session(4, 8.0, rng).describe()
    assert session(4, 8.0, rng).with_reference(rng.normal(size=(2, D)), 5.0).source == "reference"


# ---------------------------------------------------------------- what the population makes of it


def test_no_normaliser_until_the_voice_knows_enough(rng):
    assert population().normaliser(session(4, 8.0, rng)) is None


def test_reference_location_is_shrunk_toward_the_population_by_how_much_it_says(rng):
    """k = 1: one clip moves the location halfway to the speaker's mean, many clips nearly all the way."""
    one = Voice("abc").with_reference(np.full((1, D), 4.0), 3.0)
    location, spread = population().normaliser(one)
    np.testing.assert_allclose(location, 2.0)  # 0 + 1 / (1 + 1) * (4 - 0)
    np.testing.assert_allclose(spread, 2.0)  # one clip: the population's spread
    many = Voice("abc").with_reference(4.0 + rng.normal(0, 0.01, (99, D)), 300.0)
    location, _ = population().normaliser(many)
    np.testing.assert_allclose(location, 4.0 * 99 / 100, rtol=1e-2)


def test_reference_spread_moves_from_the_population_toward_the_clips_own(rng):
    clips = rng.normal(0.0, 1.0, (41, D))  # spread 1 in neutral reading, 1.5 over all speech (the ratio)
    _, spread = population().normaliser(Voice("abc").with_reference(clips, 60.0))
    v = 40 / (40 + 4)
    expected = np.exp(v * np.log(clips.std(axis=0, ddof=1) * 1.5) + (1 - v) * np.log(2.0))
    np.testing.assert_allclose(spread, expected, rtol=1e-5)


def test_a_session_anchor_takes_off_the_emotion_it_is_heard_to_carry(rng):
    """A session heard as all angry: half of the angry offset (in spread units) is taken off its mean."""
    offsets = np.zeros((CLASSES, D))
    offsets[3] = 1.0  # angry: one spread above the neutral voice
    angry = np.eye(CLASSES)[[3] * 40]
    v = Voice("abc").with_session(np.full((40, D), 5.0), angry, 60.0)
    location, spread = population(offsets=offsets).normaliser(v)
    heard = 1 / 7 + 0.5 * (1 - 1 / 7)  # the angry share, pulled halfway to an even mix
    neutral = 5.0 - 2.0 * heard
    np.testing.assert_allclose(location, neutral * 40 / 44, rtol=1e-6)  # k_session = 4
    np.testing.assert_allclose(spread, 2.0)


def test_reference_and_session_each_count_by_what_they_say(rng):
    ref = Voice("abc").with_reference(np.full((2, D), 4.0), 5.0)
    both = ref.with_session(np.full((40, D), 8.0), np.full((40, CLASSES), 1 / 7), 60.0)
    location, _ = population().normaliser(both)
    expected = (2 / 1 * 4.0 + 40 / 4 * 8.0) / (1 + 2 / 1 + 40 / 4)
    np.testing.assert_allclose(location, expected, rtol=1e-6)


def test_statistics_that_do_not_fit_are_refused():
    with pytest.raises(ParameterError, match="do not fit"):
        population(offsets=np.zeros((6, D))).check(D, CLASSES)
    with pytest.raises(ParameterError, match="finite and positive"):
        population(spread=np.zeros(D)).check(D, CLASSES)


# ---------------------------------------------------------------- the classifier's adapted path


@pytest.fixture(scope="module")
def adapted(classifier):
    if classifier.adapted is None:
        pytest.skip("the shipped bundle has no adapted model")
    return classifier


def test_calibrate_builds_a_voice_from_speech(adapted):
    v = adapted.calibrate([speech_like(4.0, SR, seed=1), speech_like(3.0, SR, seed=2)], SR)
    assert v.source == "reference" and v.features == adapted.fingerprint
    assert v.reference.count >= 2 and 6.0 < v.reference_seconds < 8.0
    assert v.reference.mean.shape == (adapted.extractor.n_features,)
    again = adapted.calibrate(speech_like(3.0, SR, seed=3), SR, voice=v)  # adds to it
    assert again.reference.count > v.reference.count and again.reference_seconds > v.reference_seconds


def test_an_adapted_verdict_uses_the_voice(adapted):
    y = speech_like(3.0, SR, seed=5)
    plain = adapted.predict(y, SR)
    a = adapted.predict(y, SR, voice=adapted.calibrate(speech_like(3.0, SR, seed=6), SR))
    b = adapted.predict(y, SR, voice=adapted.calibrate(speech_like(3.0, SR, f0=220.0, seed=7), SR))
    assert a.probabilities != b.probabilities and a.probabilities != plain.probabilities
    assert sum(a.probabilities.values()) == pytest.approx(1.0)


def test_the_same_voice_through_json_gives_the_same_verdict(adapted):
    v = adapted.calibrate(speech_like(3.0, SR, seed=6), SR)
    y = speech_like(3.0, SR, seed=5)
    assert adapted.predict(y, SR, voice=Voice.from_json(v.to_json())) == adapted.predict(y, SR, voice=v)


def test_timeline_with_a_voice_matches_predict_per_window(adapted):
    v = adapted.calibrate(speech_like(3.0, SR, seed=6), SR)
    y = speech_like(3.0, SR, seed=5)
    t = adapted.timeline(y, SR, voice=v)
    assert t.windows[0].prediction == adapted.predict(y, SR, voice=v)


def test_silent_reference_is_refused(adapted):
    with pytest.raises(AudioError, match="reference recordings hold no usable speech"):
        adapted.calibrate([np.zeros(SR * 2, np.float32)], SR)


def test_a_voice_from_other_features_is_refused(adapted):
    v = Voice("not-this-model").with_reference(np.zeros((1, adapted.extractor.n_features)), 1.0)
    with pytest.raises(ParameterError, match="another model's features"):
        adapted.predict(speech_like(2.0, SR), SR, voice=v)


def test_a_short_session_is_learned_but_not_used_yet(adapted):
    v = adapted.adapt([speech_like(3.0, SR, seed=1)] * 3, SR)
    assert v.session.count == 3 and v.source is None
    y = speech_like(2.5, SR, seed=9)
    assert adapted.predict(y, SR, voice=v) == adapted.predict(y, SR)  # judged as without a voice


def test_a_long_enough_session_is_adapted_to(adapted):
    takes = [speech_like(3.0, SR, f0=110 + 12 * i, seed=i) for i in range(18)]
    v = adapted.adapt(takes, SR)
    assert v.source == "same-speaker" and v.recordings == 18
    assert adapted.predict(takes[0], SR, voice=v) != adapted.predict(takes[0], SR)


def test_hearing_once_then_judging_is_predict(adapted, ravdess_files):
    """What a batch does for --same-speaker (features once) gives exactly predict's verdicts."""
    v = adapted.calibrate(ravdess_files[0])
    long = np.concatenate([speech_like(3.0, SR, seed=i) for i in range(22)])  # over a minute: a timeline's summary
    for source, rate in [(f, None) for f in ravdess_files] + [(long, SR)]:
        heard = adapted.hear(source, rate)
        assert adapted.judge(heard) == adapted.predict(source, rate)
        assert adapted.judge(heard, v) == adapted.predict(source, rate, voice=v)


@pytest.mark.parametrize(
    "clips, seconds, more",
    [
        (0, 0.0, "after about 30 s more of speech in 16 more short recordings or a few longer ones,"),
        (2, 24.0, "after about 6 s more of speech in 14 more short recordings or a few longer ones,"),
        (15, 29.6, "after about 1 s more of speech,"),  # never "0 s more"
        (10, 31.0, "after 6 more short recordings or one of about 9 s,"),  # enough speech, too few clips
        (15, 40.0, "after 1 more recording,"),
        (14, 20.0, "after about 10 s more of speech,"),  # 2 clips always come with 10 s of speech
    ],
)
def test_a_learning_voice_says_what_it_still_needs(rng, clips, seconds, more):
    v = session(clips, seconds, rng) if clips else Voice("abc")
    text = v.describe()
    assert text.startswith("Learning your voice (") and more in text and " 0 s more" not in text
    assert text.endswith("or after the calibration step.")


# ---------------------------------------------------------------- voices sent by someone else (issue 20, REST)


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"format": 2, "features": "a", "session": {"count": 1, "sum": [1], "seconds": 1, "recordings": 1, '
         '"probabilities": [NaN]}}', "verdicts must be a finite"),
        ('{"format": 2, "features": "a", "session": {"count": 1, "sum": [1], "seconds": 1, "recordings": 1, '
         '"probabilities": [-1]}}', "non-negative"),
        ('{"format": 2, "features": "a", "reference": {"count": 1, "sum": [1], "seconds": Infinity}}', "finite"),
        ('{"format": 2, "features": "a", "reference": {"count": 1e999, "sum": [1], "seconds": 1}}', "wrong kind"),
        ('{"format": 2, "features": "a", "reference": {"count": 1, "sum": [1, [2]], "seconds": 1}}', "wrong kind"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)  # fmt: skip
def test_a_hostile_voice_is_one_sentence(text, match):
    with pytest.raises(ParameterError, match=match) as caught:
        Voice.from_json(text)
    assert str(caught.value).count(". ") == 0


def test_check_voice_refuses_sums_that_do_not_fit_or_no_speech_gives(adapted):
    d = adapted.extractor.n_features
    good = adapted.adapt([speech_like(3.0, SR, seed=1)], SR, voice=adapted.calibrate(speech_like(3.0, SR), SR))
    assert adapted.check_voice(good) is good
    bad = [
        Voice(good.features).with_reference(np.ones((2, d - 1)), 2.0),
        Voice(good.features).with_session(np.ones((2, d)), np.ones((2, 3)), 2.0),
        Voice(good.features).with_reference(np.full((2, d), 1e150), 2.0),  # overflows the model's arithmetic
    ]
    for voice in bad:
        with pytest.raises(ParameterError, match="does not fit this model's features"):
            adapted.check_voice(voice)
    huge = Voice(good.features).with_reference(np.full((2, d), 1e150), 2.0)
    with pytest.raises(ParameterError, match="does not fit"):
        adapted.predict(speech_like(2.0, SR), SR, voice=huge)


def test_learning_a_session_stops_at_the_next_span(adapted):
    import threading

    from ser_core.errors import Cancelled

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        adapted.adapt([speech_like(3.0, SR)], SR, stop=stop)
    with pytest.raises(Cancelled):
        adapted.hear(np.concatenate([speech_like(3.0, SR, seed=i) for i in range(22)]), SR, stop=stop)
