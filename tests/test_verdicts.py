"""What a verdict says in words: the overall verdict of a recording of several windows or
utterances, the intensity's percentage, and the sentence for audio without speech."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ser_core import EMOTIONS, Prediction, Timeline, Utterances, Window
from ser_core.errors import FROM_FILE, FROM_MICROPHONE, AudioError, NoSpeechError
from ser_core.inference.verdicts import MAJORITY


def verdict(emotion: str, confidence: float = 0.9, strength: float | None = 0.3) -> Prediction:
    """A prediction won by ``emotion`` with ``confidence``, the rest shared evenly."""
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    probs = np.array([confidence if e == emotion else rest for e in EMOTIONS])
    return Prediction.from_probabilities(EMOTIONS, probs, strength)


def utterances(*emotions: str | None, strength: float | None = 0.3) -> Utterances:
    """One utterance a second for each emotion (``None``: too short to judge)."""
    rows = [Window(i, i + 0.8, None if e is None else verdict(e, strength=strength)) for i, e in enumerate(emotions)]
    return Utterances(EMOTIONS, 0.0, 0.0, float(len(emotions)), rows)


def test_seven_utterances_with_seven_emotions_are_mixed_not_the_mean():
    t = utterances(*EMOTIONS)
    assert t.summary.confidence < 0.2  # the mean of the probabilities names one emotion nobody heard
    overall = t.overall()
    assert overall.mixed and overall.emotion is None and overall.intensity is None
    assert overall.counts == dict.fromkeys(EMOTIONS, 1)  # ties keep the label order
    assert overall.describe() == (
        "mixed: no emotion in more than half of the 7 utterances "
        "(neutral 1, calm 1, happy 1, angry 1, fearful 1, disgust 1, surprised 1)"
    )


def test_an_emotion_in_more_than_half_is_the_recordings():
    t = utterances("angry", "calm", "angry", None, "angry", "happy", "angry")
    overall = t.overall()
    assert overall.emotion == "angry" and overall.spans == 6  # the utterance without a verdict does not count
    assert overall.counts == {"angry": 4, "calm": 1, "happy": 1}
    assert overall.describe() == "angry in 4 of 6 utterances (also calm 1, happy 1), normal (30% chance of strong)"


@pytest.mark.parametrize(
    "emotions, expected",
    [
        (("angry", "calm"), None),  # exactly half is not more than half
        (("angry", "angry", "calm", "happy"), None),
        (("angry", "angry", "calm"), "angry"),
        (("angry",), "angry"),
    ],
    ids=["one-each", "half", "two-of-three", "one"],
)
def test_the_majority_rule_at_its_boundary(emotions, expected):
    assert MAJORITY == 0.5
    assert utterances(*emotions).overall().emotion == expected


def test_wording_for_one_all_and_windows():
    assert utterances("happy").overall().describe() == "happy in its one utterance, normal (30% chance of strong)"
    assert utterances("calm", "calm", "calm").overall().describe().startswith("calm in all 3 utterances")
    windows = [Window(i, i + 3.5, verdict("fearful")) for i in range(5)] + [Window(5, 8.5, None)]
    timeline = Timeline(EMOTIONS, 3.5, 1.0, 8.5, windows)
    assert timeline.overall().describe().startswith("fearful in all 5 windows with speech")


def test_intensity_is_that_of_the_emotions_own_spans():
    rows = [Window(0, 1, verdict("angry", strength=0.9)), Window(1, 2, verdict("angry", strength=0.7))]
    rows.append(Window(2, 3, verdict("calm", strength=0.0)))
    overall = Utterances(EMOTIONS, 0.0, 0.0, 3.0, rows).overall()
    assert overall.intensity.level == "strong" and overall.intensity.strength == pytest.approx(0.8)
    assert utterances("neutral", "neutral").overall().intensity is None  # neutral has no intensity
    assert utterances("angry", "angry", strength=None).overall().intensity is None  # a bundle without the model


def test_no_speech_anywhere_is_one_sentence():
    with pytest.raises(NoSpeechError, match="No speech was found"):
        utterances(None, None).overall()


# ---------------------------------------------------------------- audio without speech, by its source


@pytest.mark.parametrize("reason", ["silent", "no speech"])
def test_the_source_decides_the_advice(reason):
    error = NoSpeechError(reason)
    assert isinstance(error, AudioError) and error.source == FROM_FILE
    assert "microphone" not in str(error) and "choose" in str(error)
    spoken = error.for_source(FROM_MICROPHONE)
    assert "microphone" in str(spoken) and spoken.reason == reason
    for e in (error, spoken):
        text = str(e)
        assert text.count(". ") == 0 and text.endswith(".") and text[0].isupper()
        again = pickle.loads(pickle.dumps(e))  # across worker processes
        assert type(again) is NoSpeechError and str(again) == text


def test_a_silent_recording_in_the_demo_is_told_about_the_microphone(classifier):
    gr = pytest.importorskip("gradio")
    import functools

    from ser_core.serve import gradio_app as app

    silence = (48_000, np.zeros(48_000 * 2, np.int16))
    upload = app.friendly(functools.partial(app.on_audio, classifier))
    recording = app.friendly(functools.partial(app.on_audio, classifier), source=FROM_MICROPHONE)
    with pytest.raises(gr.Error) as from_file:
        upload(silence)
    with pytest.raises(gr.Error) as from_microphone:
        recording(silence)
    assert "silent" in from_file.value.message and "microphone" not in from_file.value.message
    assert "check the microphone" in from_microphone.value.message
