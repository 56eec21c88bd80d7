"""The classifier's API contract: predictions, one path for files and arrays, windows, timeline."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

from ser_core import EMOTIONS, EmotionClassifier, Prediction, Timeline, audio
from ser_core.errors import ArtifactError, AudioError, ParameterError

SR = audio.SAMPLE_RATE


@pytest.fixture(scope="module")
def clf(bundle_dir) -> EmotionClassifier:
    return EmotionClassifier.load(bundle_dir)


def assert_valid(p: Prediction) -> None:
    assert p.emotion in EMOTIONS
    assert list(p.probabilities) == list(EMOTIONS)
    values = list(p.probabilities.values())
    assert all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)
    assert sum(values) == pytest.approx(1.0, abs=1e-6)
    assert isinstance(p.confidence, float)
    assert p.confidence == max(values) == p.probabilities[p.emotion]


@pytest.fixture
def spy(clf, monkeypatch):
    """Records every batch of clips the model is asked about and the probability rows it returns."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    real = clf.predictions

    def predictions(clips: np.ndarray, voice=None) -> list:
        out = real(clips, voice)
        rows = np.array([[p.probabilities[k] for k in clf.labels] for p in out])
        calls.append((np.atleast_2d(clips).copy(), rows))
        return out

    monkeypatch.setattr(clf, "predictions", predictions)
    return calls


def test_load_default_reads_shipped_or_env_bundle(bundle_dir):
    assert EmotionClassifier.load().bundle.path.resolve() == bundle_dir.resolve()


def test_predict_array_contract(clf, speech):
    p = clf.predict(speech, SR)
    assert_valid(p)
    intensity = None if p.intensity is None else p.intensity.to_dict()
    assert p.to_dict() == {
        "emotion": p.emotion,
        "confidence": p.confidence,
        "probabilities": p.probabilities,
        "intensity": intensity,
    }


@pytest.mark.parametrize(("sr", "subtype"), [(16_000, "FLOAT"), (44_100, "FLOAT"), (8_000, "PCM_16")])
def test_file_and_array_agree(clf, tmp_path, sr, subtype):
    y = speech_like(2.0, sr)
    if subtype == "PCM_16":
        y = np.round(y * 32767).astype(np.int16)  # exactly what the file will hold
    path = tmp_path / "s.wav"
    sf.write(str(path), y, sr, subtype=subtype)
    from_file = clf.predict(path)
    from_array = clf.predict(y, sr)
    assert from_file.emotion == from_array.emotion
    for k in EMOTIONS:
        assert from_file.probabilities[k] == pytest.approx(from_array.probabilities[k], abs=1e-4)


def test_str_path_and_pathlike_agree(clf, tmp_path, speech):
    path = tmp_path / "s.wav"
    sf.write(str(path), speech, SR)
    assert clf.predict(str(path)) == clf.predict(path)


def test_integer_and_float_arrays_agree(clf, speech):
    pcm = np.round(speech * 32767).astype(np.int16)
    a, b = clf.predict(pcm, SR), clf.predict(pcm / 32768.0, SR)
    for k in EMOTIONS:
        assert a.probabilities[k] == pytest.approx(b.probabilities[k], abs=1e-5)


def test_stereo_and_channels_first_agree(clf, speech):
    stereo = np.stack([speech, speech], axis=1)
    a, b, c = clf.predict(speech, SR), clf.predict(stereo, SR), clf.predict(stereo.T, SR)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert a.probabilities == pytest.approx(c.probabilities, abs=1e-6)


def test_loudness_does_not_change_the_verdict(clf, speech):
    """Clips are peak-normalised, so a quiet and a loud take are judged alike."""
    a, b = clf.predict(speech * 0.05, SR), clf.predict(speech, SR)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("file.wav", 16_000), ParameterError, "sample_rate only with an array"),
        ((np.zeros(10),), ParameterError, "needs its sample_rate"),
        ((np.zeros(2 * SR), SR), AudioError, "silent"),
        ((np.zeros(0), SR), AudioError, "empty"),
    ],
)
def test_predict_rule(clf, args, error, match):
    with pytest.raises(error, match=match):
        clf.predict(*args)


def test_short_audio_is_one_window(clf, spy, speech):
    clf.predict(speech, SR)
    assert [clips.shape for clips, _ in spy] == [(1, audio.N_SAMPLES)]


def test_long_audio_is_judged_over_windows(clf, spy):
    y = speech_like(9.0, SR)  # 9.5 s of sound after trimming: longer than one 3.5 s window
    p = clf.predict(y, SR)
    clips = np.concatenate([c for c, _ in spy])
    rows = np.concatenate([r for _, r in spy])
    assert len(clips) >= 6  # windows every second
    assert clips.shape[1] == audio.N_SAMPLES
    expected = rows.mean(axis=0) / rows.mean(axis=0).sum()
    assert [p.probabilities[k] for k in EMOTIONS] == pytest.approx(expected.tolist(), abs=1e-6)
    assert_valid(p)


def test_long_file_streamed_equals_array(clf, tmp_path):
    y = speech_like(80.0, SR)  # longer than IN_MEMORY_SECONDS: the file is read as a stream
    path = tmp_path / "long.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")
    a, b = clf.predict(path), clf.predict(y, SR)
    assert a.emotion == b.emotion
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert_valid(a)


# ---------------------------------------------------------------- timeline


@pytest.fixture(scope="module")
def gap_signal() -> np.ndarray:
    """3.5 s of speech, 6 s of digital silence, 3.5 s of speech."""
    return np.concatenate([speech_like(3.0, SR, seed=1), np.zeros(6 * SR, np.float32), speech_like(3.0, SR, seed=2)])


def test_timeline_windows(clf, gap_signal):
    t = clf.timeline(gap_signal, SR, window=3.5, hop=1.0)
    assert isinstance(t, Timeline)
    starts = [w.start for w in t.windows]
    assert starts == pytest.approx(np.arange(len(starts)).tolist())
    assert all(w.end - w.start <= 3.5 + 1e-9 for w in t.windows)
    assert t.windows[-1].end == pytest.approx(gap_signal.size / SR)
    assert t.duration == pytest.approx(gap_signal.size / SR)
    silent = [w for w in t.windows if 3.5 <= w.start and w.end <= 9.5]
    assert silent and all(w.prediction is None for w in silent)
    assert t.windows[0].prediction is not None and t.voiced[-1].end > 9.5
    for w in t.voiced:
        assert_valid(w.prediction)


def test_timeline_summary_is_mean_of_voiced_windows(clf, gap_signal):
    t = clf.timeline(gap_signal, SR)
    mean = np.mean([[w.prediction.probabilities[k] for k in EMOTIONS] for w in t.voiced], axis=0)
    assert [t.summary.probabilities[k] for k in EMOTIONS] == pytest.approx(mean.tolist(), abs=1e-9)
    shares = t.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares[t.voiced[0].prediction.emotion] > 0


def test_timeline_csv_columns(clf, gap_signal):
    t = clf.timeline(gap_signal, SR)
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == ["start", "end", "speech", "emotion", "confidence", "intensity", "strength", *EMOTIONS]
    assert len(rows) == 1 + len(t.windows)
    for row, w in zip(rows[1:], t.windows, strict=True):
        assert float(row[0]) == pytest.approx(w.start, abs=1e-3)
        assert row[2] == ("1" if w.prediction else "0")
        if w.prediction:
            assert row[3] == w.prediction.emotion
            assert sum(float(x) for x in row[7:]) == pytest.approx(1.0, abs=1e-3)
            assert row[5] == (w.prediction.intensity.level if w.prediction.intensity else "")
        else:
            assert row[3:] == [""] * (4 + len(EMOTIONS))


def test_timeline_dict(clf, gap_signal):
    d = clf.timeline(gap_signal, SR).to_dict()
    assert set(d) == {"duration", "window", "hop", "summary", "shares", "windows"}
    assert d["summary"]["emotion"] in EMOTIONS
    assert {w["speech"] for w in d["windows"]} == {True, False}


def test_timeline_of_file_equals_array(clf, tmp_path, gap_signal):
    path = tmp_path / "g.wav"
    sf.write(str(path), gap_signal, SR, subtype="FLOAT")
    a, b = clf.timeline(path), clf.timeline(gap_signal, SR)
    assert [(w.start, w.end, w.prediction) for w in a.windows] == [(w.start, w.end, w.prediction) for w in b.windows]


def test_timeline_short_clip_has_one_window(clf, speech):
    t = clf.timeline(speech, SR)
    assert len(t.windows) == 1 and t.windows[0].end == pytest.approx(speech.size / SR)


def test_timeline_of_silence_has_no_summary(clf):
    t = clf.timeline(np.zeros(5 * SR, np.float32), SR)
    assert t.voiced == [] and t.to_dict()["summary"] is None
    with pytest.raises(AudioError, match="No speech was found"):
        _ = t.summary


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0.1}, "window must be between"),
        ({"window": 120.0}, "window must be between"),
        ({"hop": 0.0}, "hop must be"),
        ({"hop": 5.0}, "hop must be"),
        ({"window": 2.0, "hop": 2.5}, "hop must be"),
    ],
)
def test_timeline_parameter_rule(clf, speech, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        clf.timeline(speech, SR, **kwargs)


def test_timeline_array_needs_rate(clf, speech):
    with pytest.raises(ParameterError, match="needs its sample_rate"):
        clf.timeline(speech)


def test_timeline_file_takes_no_rate(clf, tmp_path, speech):
    path = tmp_path / "s.wav"
    sf.write(str(path), speech, SR)
    with pytest.raises(ParameterError, match="sample_rate only with an array"):
        clf.timeline(path, 8_000)


def test_prediction_from_probabilities_normalises():
    p = Prediction.from_probabilities(EMOTIONS, np.array([1, 1, 2, 0, 0, 0, 0], np.float32))
    assert p.emotion == "happy" and p.confidence == pytest.approx(0.5)
    assert sum(p.probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("seconds", [8.0, 80.0])  # in memory, and past IN_MEMORY_SECONDS (shared work)
def test_predict_with_timeline_equals_both(clf, seconds):
    y = speech_like(seconds, SR)
    prediction, timeline = clf.predict_with_timeline(y, SR)
    assert prediction == clf.predict(y, SR)
    assert timeline == clf.timeline(y, SR)


def test_a_recording_heard_as_a_stream_holds_its_timeline(clf):
    """Past IN_MEMORY_SECONDS, hear() keeps the timeline's windows: judged from the same features,
    they are timeline(), and their summary is the verdict; a shorter recording has no timeline in it."""
    y = speech_like(80.0, SR)
    heard = clf.hear(y, SR)
    timeline = clf.judge_timeline(heard)
    assert timeline == clf.timeline(y, SR) and timeline.summary == clf.judge(heard) == clf.predict(y, SR)
    with pytest.raises(ParameterError, match="call timeline"):
        clf.judge_timeline(clf.hear(speech_like(8.0, SR), SR))


def test_timeline_is_the_same_on_one_thread_and_several(bundle_dir, gap_signal):
    """Windows are scored on ``jobs`` threads, in batches that may finish in any order: the windows,
    their order and their verdicts do not depend on it. Closed threads start again when needed."""
    y = np.concatenate([gap_signal, speech_like(60.0, SR, seed=3), gap_signal])
    one = EmotionClassifier.load(bundle_dir, jobs=1).timeline(y, SR)
    assert len(one.windows) > 10 * 8 and {w.prediction is None for w in one.windows} == {True, False}
    for jobs in (2, 3):
        many = EmotionClassifier.load(bundle_dir, jobs=jobs)
        assert many.timeline(y, SR) == one
        many.close()
        assert many.timeline(y, SR) == one
        many.close()


def test_timeline_windows_are_scored_off_the_calling_thread(bundle_dir, gap_signal, monkeypatch):
    import threading

    clf = EmotionClassifier.load(bundle_dir, jobs=2)
    names: list[str] = []
    real = clf.predictions

    def predictions(clips: np.ndarray, voice=None) -> list:
        names.append(threading.current_thread().name)
        return real(clips, voice)

    monkeypatch.setattr(clf, "predictions", predictions)
    clf.timeline(np.concatenate([gap_signal] * 3), SR)
    clf.close()
    assert len(names) > 2 and all(name.startswith("ser-core") for name in names)
    serial = EmotionClassifier.load(bundle_dir, jobs=1)
    monkeypatch.setattr(serial, "predictions", predictions)
    names.clear()
    serial.timeline(gap_signal, SR)
    assert names and set(names) == {threading.current_thread().name}


def test_jobs_must_be_positive(bundle_dir):
    with pytest.raises(ParameterError, match="jobs must be at least 1"):
        EmotionClassifier.load(bundle_dir, jobs=0)


def test_a_window_longer_than_a_clip_is_judged_whole(clf):
    """An 8 s timeline window gets the verdict predict gives its 8 s (clip by clip, pooled),
    not the verdict of its middle 3.5 s."""
    y = speech_like(12.0, SR, seed=3)
    timeline = clf.timeline(y, SR, window=8.0, hop=4.0)
    first = timeline.windows[0]
    assert (first.start, first.end) == (0.0, 8.0)
    whole = clf.predict(y[: 8 * SR], SR)
    assert first.prediction.probabilities == pytest.approx(whole.probabilities, abs=1e-6)  # batched differently
    middle = audio.speech_clip(y[: 8 * SR])
    cropped = Prediction.from_probabilities(clf.labels, clf.probabilities(middle)[0])
    assert first.prediction.probabilities != pytest.approx(cropped.probabilities, abs=1e-3)


# ---------------------------------------------------------------- the shipped model by default


def test_no_argument_gives_the_shipped_model(monkeypatch, tmp_path):
    import ser_core
    from ser_core import bundle

    monkeypatch.delenv(bundle.ENV_VAR, raising=False)
    assert bundle.SHIPPED_FOLDER.parent == Path(ser_core.__file__).resolve().parent  # inside the package
    clf = EmotionClassifier()
    assert clf.bundle.path == bundle.SHIPPED_FOLDER == EmotionClassifier.load().bundle.path
    y = speech_like(2.0, SR)
    assert clf.predict(y, SR) == EmotionClassifier(bundle.read()).predict(y, SR)  # a read Bundle, as before
    assert EmotionClassifier(str(bundle.SHIPPED_FOLDER)).predict(y, SR) == clf.predict(y, SR)  # or its folder
    monkeypatch.setenv(bundle.ENV_VAR, str(tmp_path / "elsewhere"))  # the variable still selects another
    with pytest.raises(ArtifactError, match="No artifacts folder at .*elsewhere"):
        EmotionClassifier()
