"""The demo's handlers, called as plain functions with the inputs Gradio gives them."""

from __future__ import annotations

import csv
import functools
import io

import gradio as gr
import numpy as np
import pytest
from conftest import speech_like

from ser_core import EMOTIONS, Prediction
from ser_core.audio import CLIP_SECONDS, N_SAMPLES
from ser_core.serve import gradio_app as app
from ser_core.serve.limits import LIMITS


def as_type(y: np.ndarray, dtype: str) -> np.ndarray:
    """Float samples in [-1, 1] as Gradio would hand them over."""
    if dtype == "int16":
        return (y * 32767).astype(np.int16)
    if dtype == "int32":
        return (y * 2147483647).astype(np.int32)
    return y.astype(dtype)


def gradio_input(seconds: float, sr: int, dtype: str = "int16", channels: int = 1) -> tuple[int, np.ndarray]:
    y = speech_like(seconds, sr)
    if channels == 2:
        y = np.stack([y, 0.5 * y], axis=1)
    return sr, as_type(y, dtype)


def analyse_handler(classifier, visitor=None):
    """The page's upload handler -> (verdict HTML, bar chart figure, timeline update, CSV update)."""
    handler = app.friendly(functools.partial(app.on_audio, classifier))

    def run(source):
        html, bars, timeline, csv_file, _, _ = handler(source, visitor)
        assert bars["label"].startswith(app.BARS_LABEL)
        return html, bars["value"], timeline, csv_file

    return run


def verdict_emotion(html: str) -> str:
    return html.split('data-emotion="')[1].split('"')[0]


def encode(path, y: np.ndarray, sr: int, codec: str, fmt: str) -> None:
    """Encode mono float samples with PyAV (MP3, AAC/M4A, Opus/WebM, Vorbis/OGG)."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr, layout="mono")
        frame_size = 1024
        pts = 0
        for i in range(0, y.size, frame_size):
            block = y[i : i + frame_size].astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            frame.sample_rate, frame.pts = sr, pts
            pts += block.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# ---------------------------------------------------------------- short recordings


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("sr", [44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_recording_of_any_type_rate_and_channels_gets_the_library_verdict(classifier, dtype, sr, channels):
    source = gradio_input(2.0, sr, dtype, channels)
    html, bars, timeline, csv_file = analyse_handler(classifier)(source)
    expected = classifier.predict(source[1], sr)
    assert verdict_emotion(html) == expected.emotion
    assert f"{expected.confidence:.0%} confidence" in html
    assert list(bars.data[0].x) == pytest.approx([expected.probabilities[k] * 100 for k in EMOTIONS])
    assert timeline["visible"] is False and csv_file["visible"] is False


def test_bar_chart_keeps_class_order_shows_percentages_and_highlights_the_winner():
    probs = np.array([0.05, 0.10, 0.50, 0.15, 0.08, 0.07, 0.05])
    prediction = Prediction.from_probabilities(EMOTIONS, probs)
    bar = app.probability_chart(prediction).data[0]
    assert [label.split()[-1] for label in bar.y] == list(EMOTIONS)
    assert list(bar.text) == ["5%", "10%", "50%", "15%", "8%", "7%", "5%"]
    assert list(bar.marker.opacity) == [app.MUTED_OPACITY] * 2 + [1.0] + [app.MUTED_OPACITY] * 4
    assert list(bar.marker.color) == [app.COLOURS[k] for k in EMOTIONS]


def test_verdict_card_shows_emoji_colour_and_confidence_when_sure():
    prediction = Prediction.from_probabilities(EMOTIONS, np.array([0.02, 0.02, 0.02, 0.9, 0.02, 0.01, 0.01]))
    html = app.render_verdict(prediction)
    assert app.EMOJIS["angry"] in html and app.COLOURS["angry"] in html
    assert "90% confidence" in html and 'data-unsure="false"' in html and "unsure" not in html.split(">", 1)[1]


@pytest.mark.parametrize(
    "probs, reason",
    [
        ([0.05, 0.05, 0.36, 0.34, 0.1, 0.05, 0.05], "nearly tied"),  # near tie
        ([0.14, 0.14, 0.30, 0.12, 0.10, 0.10, 0.10], "only 30% confidence"),  # low confidence
    ],
)
def test_an_unsure_model_is_shown_as_a_guess(probs, reason):
    prediction = Prediction.from_probabilities(EMOTIONS, np.array(probs))
    assert reason in app.uncertainty(prediction)
    html = app.render_verdict(prediction)
    assert "maybe happy?" in html and 'data-unsure="true"' in html and reason in html
    assert app.UNKNOWN_EMOJI in html and app.EMOJIS["happy"] not in html


# ---------------------------------------------------------------- long recordings


def test_long_recording_gets_a_timeline_its_summary_and_a_csv(classifier):
    source = gradio_input(8.0, 48_000)
    html, bars, timeline, csv_file = analyse_handler(classifier)(source)
    expected = classifier.timeline(source[1], 48_000)
    assert verdict_emotion(html) == classifier.predict(source[1], 48_000).emotion  # page and library agree
    assert f"(of {len(expected.windows)})" in html  # "N windows with speech (of M)"
    assert timeline["visible"] is True and csv_file["visible"] is True
    fig = timeline["value"]
    assert [t.name.split()[-1] for t in fig.data] == list(EMOTIONS)
    assert len(fig.data[0].x) == len(expected.windows)
    with open(csv_file["value"], encoding="utf-8") as f:
        text = f.read()
    assert text == expected.to_csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][-7:] == list(EMOTIONS) and len(rows) == len(expected.windows) + 1


def test_recording_of_exactly_one_window_has_no_timeline(classifier):
    sr = 44_100
    source = (sr, as_type(np.resize(speech_like(3.0, sr), int(CLIP_SECONDS * sr)), "int16"))
    _, _, timeline, _ = analyse_handler(classifier)(source)
    assert timeline["visible"] is False


# ---------------------------------------------------------------- files


@pytest.mark.parametrize(
    "name, codec, fmt",
    [("x.mp3", "libmp3lame", "mp3"), ("x.m4a", "aac", "ipod"), ("x.webm", "libopus", "webm")],
)
def test_uploaded_compressed_files_are_analysed(classifier, tmp_path, name, codec, fmt):
    sr = 48_000
    path = tmp_path / name
    try:
        encode(path, speech_like(2.0, sr), sr, codec, fmt)
    except Exception as e:  # an FFmpeg build without this encoder
        pytest.skip(f"PyAV cannot encode {codec}: {e}")
    html, bars, _, _ = analyse_handler(classifier)(str(path))
    assert verdict_emotion(html) == classifier.predict(path).emotion
    assert sum(bars.data[0].x) == pytest.approx(100.0)


def test_uploaded_wav_flac_and_ogg_agree_with_the_library(classifier, tmp_path):
    import soundfile as sf

    y = speech_like(2.0, 44_100)
    for name in ("x.wav", "x.flac", "x.ogg"):  # OGG/Vorbis through libsndfile
        sf.write(tmp_path / name, y, 44_100)
        html, _, _, _ = analyse_handler(classifier)(str(tmp_path / name))
        assert verdict_emotion(html) == classifier.predict(tmp_path / name).emotion


# ---------------------------------------------------------------- bad input: one sentence each


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda tmp: None, "No audio was received"),
        (lambda tmp: (48_000, np.zeros(48_000 * 2, np.int16)), "silent"),
        (lambda tmp: (44_100, as_type(speech_like(0.1, 44_100)[11_000:15_400], "int16")), "too short"),
        (lambda tmp: (48_000, np.zeros(0, np.int16)), "empty"),
        (lambda tmp: (1_000, as_type(speech_like(2.0, 1_000), "int16")), "sample rate"),
        (lambda tmp: (48_000, np.full(48_000, np.nan, np.float32)), "NaN"),
        (lambda tmp: (48_000, np.zeros((2, 2, 48_000), np.int16)), "1-D or 2-D"),
        (lambda tmp: (48_000, np.array(["a", "b"])), "not supported"),
        (lambda tmp: "definitely-not-here.wav", "does not exist"),
    ],
    ids=["none", "silent", "too-short", "empty", "wrong-rate", "nan", "3d", "strings", "missing-file"],
)
def test_bad_input_becomes_one_friendly_sentence(classifier, tmp_path, make_source, message):
    with pytest.raises(gr.Error, match=message) as err:
        analyse_handler(classifier)(make_source(tmp_path))
    text = str(err.value.message)
    assert "Traceback" not in text and text.count(". ") == 0 and text.endswith(".")


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"this is not audio" * 100, "could not be decoded"), (b"RIFF\x00\x00", "could not be decoded")],
)
def test_corrupt_or_non_audio_upload_is_refused_politely(classifier, tmp_path, content, message):
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        analyse_handler(classifier)(str(path))


def test_over_long_audio_is_refused_with_the_limit(classifier, tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.setattr(app, "MAX_SECONDS", 6.0)
    with pytest.raises(gr.Error, match="longer than 6 s"):
        analyse_handler(classifier)(gradio_input(7.0, 16_000))
    sf.write(tmp_path / "long.wav", speech_like(7.0, 16_000), 16_000)
    with pytest.raises(gr.Error, match="longer than 6 s"):
        analyse_handler(classifier)(str(tmp_path / "long.wav"))


def test_unexpected_failure_becomes_a_generic_sentence(classifier, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(app, "analyse", boom)
    with pytest.raises(gr.Error) as err:
        analyse_handler(classifier)(gradio_input(2.0, 48_000))
    assert err.value.message == app.FRIENDLY_FAILURE


# ---------------------------------------------------------------- API


@pytest.mark.parametrize("seconds", [2.0, 6.0])
def test_api_predict_returns_the_json_contract(classifier, seconds):
    source = gradio_input(seconds, 44_100)
    out = app.api_predict(classifier, source)
    assert set(out) == {"emotion", "confidence", "probabilities", "intensity", "adapted"} and out["adapted"] is None
    assert list(out["probabilities"]) == list(EMOTIONS)
    assert sum(out["probabilities"].values()) == pytest.approx(1.0)
    assert out["emotion"] == max(out["probabilities"], key=out["probabilities"].get)
    assert out["confidence"] == out["probabilities"][out["emotion"]]
    assert out["emotion"] == verdict_emotion(analyse_handler(classifier)(source)[0])  # page and API agree


# ---------------------------------------------------------------- live mode


def chunks(y: np.ndarray, sr: int, seconds: float = app.LIVE_STREAM_EVERY):
    step = int(seconds * sr)
    for i in range(0, y.size, step):
        yield sr, as_type(y[i : i + step], "int16")


def test_live_session_judges_about_once_a_second_and_keeps_one_window(classifier):
    sr = 48_000
    session, added, judged = None, [], None
    for i, chunk in enumerate(chunks(speech_like(6.0, sr), sr, seconds=0.1)):  # what Gradio sends
        session, updated = app.live_step(classifier, session, chunk, now=100.0 + 0.1 * i)
        added.append(updated)
        judged = session.buffer.copy() if updated else judged
        assert session.buffer.size <= N_SAMPLES
    assert not any(added[:9])  # under LIVE_MIN_SECONDS of sound: nothing to judge yet
    assert np.diff(session.times) == pytest.approx(np.full(len(session.times) - 1, app.LIVE_STREAM_EVERY), abs=0.11)
    assert sum(added) == len(session.times) == len(session.probabilities) >= 5
    assert session.current == classifier.predictions(app.audio.to_clip(app.audio.check_speech(judged)))[0]
    assert session.probabilities[-1] == session.current.probabilities


def test_live_silence_is_a_status_not_an_error(classifier):
    session = None
    for i in range(3):
        session, updated = app.live_step(classifier, session, (44_100, np.zeros(44_100, np.int16)), now=float(i))
    assert updated and session.current is None and "No speech" in session.status
    assert session.probabilities == [None, None, None] and session.times == [0.0, 1.0, 2.0]


def test_live_handler_survives_bad_chunks_and_redraws_only_with_new_points(classifier):
    handler = functools.partial(app.on_live_chunk, classifier)
    session, html, chart, status = handler((48_000, np.full(48_000, np.nan, np.float32)), None)
    assert "NaN" in html and isinstance(chart, type(gr.skip())) and isinstance(status, type(gr.skip()))
    sr = 48_000
    outputs = []
    for chunk in chunks(speech_like(1.5, sr), sr, seconds=0.5):
        outputs.append(handler(chunk, session))
        session = outputs[-1][0]
    redrawn = [out for out in outputs if not isinstance(out[2], type(gr.skip()))]
    assert len(redrawn) == len(session.times) >= 1
    html, chart = redrawn[-1][1], redrawn[-1][2]
    assert f'data-emotion="{session.current.emotion}"' in html
    assert [t.name.split()[-1] for t in chart.data] == list(EMOTIONS)
    assert list(chart.data[0].x) == session.times


def test_live_start_resets_the_session():
    session, html, chart = app.on_live_start()
    assert session.started is None and session.times == [] and chart is None


# ---------------------------------------------------------------- page


def test_page_builds_with_help_limits_and_the_predict_endpoint(classifier):
    demo = app.build_app(classifier)
    config = demo.get_config_file()
    text = str(config)
    for emotion in EMOTIONS:
        assert app.EMOJIS[emotion] in text
    assert "Kids are talking by the door" in text and "Dogs are sitting by the door" in text
    assert f"{app.MAX_UPLOAD_BYTES / 2**20:g} MB" in text and f"{app.MAX_SECONDS / 60:g} minutes" in text
    every, age = app.CACHE_SWEEP
    assert f"deleted {age // 60} to {(age + every) // 60} minutes after they arrive" in text
    api_names = [d.get("api_name") for d in config["dependencies"] if d.get("api_visibility", "public") == "public"]
    assert api_names == ["predict"]
    streams = [d for d in config["dependencies"] if d.get("stream_every")]
    assert any(d["stream_every"] == app.LIVE_STREAM_EVERY and d["time_limit"] == app.LIVE_TIME_LIMIT for d in streams)
    assert app.launch_options()["max_file_size"] == app.MAX_UPLOAD_BYTES
    # /predict stays stateless: a recording and an optional reference in, JSON out, no visitor's voice
    (predict,) = [d for d in config["dependencies"] if d.get("api_name") == "predict"]
    kinds = {c["id"]: c["type"] for c in config["components"]}
    assert [kinds[i] for i in predict["inputs"]] == ["audio", "audio"]
    assert [kinds[i] for i in predict["outputs"]] == ["json"]
    # one set of limits for every interface
    assert app.MAX_UPLOAD_BYTES == LIMITS.max_upload_bytes and app.MAX_SECONDS == LIMITS.max_seconds


# ---------------------------------------------------------------- the visitor's voice

SR = 16_000


@pytest.fixture
def adaptive(classifier):
    """The test bundle's classifier, when it has an adapted model of this design."""
    if classifier.adapted is None:
        pytest.skip("the bundle has no adapted model of this design")
    return classifier


def take(i: int, seconds: float, sr: int = 48_000) -> tuple[int, np.ndarray]:
    """The ``i``-th recording of one synthetic speaker, as the browser hands it over (16-bit)."""
    return sr, as_type(speech_like(seconds, sr, f0=120.0 + 8 * i, seed=i), "int16")


def upload(classifier):
    """The page's upload handler -> (verdict, bars, timeline, CSV, voice status, the voice judged relative to)."""
    return app.friendly(functools.partial(app.on_audio, classifier))


class Counting:
    """A feature extractor that counts the clips it is given."""

    def __init__(self, extractor) -> None:
        self.extractor, self.clips = extractor, 0

    def __call__(self, clips):
        self.clips += len(clips)
        return self.extractor(clips)

    def __getattr__(self, name):
        return getattr(self.extractor, name)


def test_every_recording_teaches_the_voice_and_verdicts_adapt_once_it_knows_enough(adaptive):
    """Each recording's features join the visitor's voice; the one that completes it is still judged
    by the model alone and says the next ones are adapted; later ones are judged relative to the voice
    including themselves (what the library gives), and the card, bars and timeline say so."""
    visitor, handler, signals, switched = app.VisitorVoice(), upload(adaptive), [], None
    for i in range(6):
        source = take(i, 8.0)
        y = app.load_signal(source)
        before = adaptive.adapt(signals, SR)
        signals.append(y)
        after = adaptive.adapt(signals, SR)
        html, bars, timeline, _, status, judged = handler(source, visitor)
        assert visitor.voice.recordings == len(signals) and visitor.voice.session.count == after.session.count
        np.testing.assert_allclose(visitor.voice.session.total, after.session.total, rtol=1e-6)
        assert f'data-recordings="{len(signals)}"' in status
        if before.source is None:
            expected = adaptive.predict(y, SR)
            assert judged is None and 'data-adapted="false"' in html
            assert bars["label"] == app.BARS_LABEL and timeline["label"] == app.TIMELINE_LABEL
            if after.source is None:
                assert 'data-adapted="false"' in status and after.describe() in status
                assert app.SWITCHED_ON_NOTE not in html and "Learning your voice" in status
            else:
                switched = i
                assert app.SWITCHED_ON_NOTE in html and 'data-adapted="true"' in status
        else:
            expected = adaptive.predict(y, SR, voice=after)
            assert judged.recordings == len(signals) and 'data-adapted="true"' in html
            assert after.describe() in html and after.describe() in status and app.ADAPTED_NOTE in status
            assert bars["label"] == app.BARS_LABEL + app.ADAPTED_LABEL
            assert timeline["label"] == app.TIMELINE_LABEL + app.ADAPTED_LABEL
            assert timeline["value"].data[0].y == pytest.approx(
                [
                    None if w.prediction is None else w.prediction.probabilities[EMOTIONS[0]] * 100
                    for w in adaptive.timeline(y, SR, voice=after).windows
                ]
            )
        assert verdict_emotion(html) == expected.emotion
        assert list(bars["value"].data[0].x) == pytest.approx([expected.probabilities[k] * 100 for k in EMOTIONS])
    assert switched is not None and switched < 5  # at least one recording judged relative to the voice
    assert "Adapted to your voice from 6 recordings, 48 s of speech." in status


@pytest.mark.parametrize("seconds", [2.0, 8.0, 65.0])
def test_learning_costs_no_second_analysis(adaptive, monkeypatch, seconds):
    """A recording's features are computed once for its verdict and its voice: learning adds no clip
    to analyse. Up to one clip, and over a minute (its timeline's windows are its clips), every clip
    analysed is the one learned."""
    counting = Counting(adaptive.extractor)
    monkeypatch.setattr(adaptive, "extractor", counting)
    source = take(0, seconds, sr=SR)
    upload(adaptive)(source, None)
    alone, counting.clips = counting.clips, 0
    visitor = app.VisitorVoice()
    upload(adaptive)(source, visitor)
    assert counting.clips == alone > 0
    if seconds < 3 or seconds > 60:
        assert visitor.voice.session.count == counting.clips


def test_the_utterances_are_judged_relative_to_the_voice_the_verdict_used(adaptive):
    visitor = app.VisitorVoice()
    visitor.calibrate(adaptive, speech_like(8.0, SR, f0=125.0, seed=40))
    pause = np.zeros(SR // 2, np.float32)
    y = np.concatenate([np.concatenate([speech_like(2.0, SR, f0=120.0 + 9 * i, seed=i), pause]) for i in range(4)])
    *_, judged = upload(adaptive)((SR, y), visitor)
    assert judged is visitor.voice  # adapted before it, so judged relative to the voice including it
    bands, table = app.on_segments(adaptive, (SR, y), judged)
    assert bands["label"] == app.UTTERANCES_LABEL + app.ADAPTED_LABEL
    assert table["label"] == app.UTTERANCE_TABLE_LABEL + app.ADAPTED_LABEL
    assert table["value"] == app.utterance_rows(adaptive.utterances(y, SR, voice=judged))
    bands, table = app.on_segments(adaptive, (SR, y), None)
    assert bands["label"] == app.UTTERANCES_LABEL and table["label"] == app.UTTERANCE_TABLE_LABEL


def test_each_visitor_session_has_its_own_voice(adaptive):
    """Gradio gives every browser session its own copy of the page's empty voice, kept for that
    session: what one visitor teaches it, another never sees."""
    from gradio.state_holder import SessionState

    demo = app.build_app(adaptive)
    (key,) = [k for k, b in demo.blocks.items() if isinstance(b, gr.State) and isinstance(b.value, app.VisitorVoice)]
    first, second = SessionState(demo), SessionState(demo)
    mine, theirs = first[key], second[key]
    assert mine is not theirs and first[key] is mine
    handler = upload(adaptive)
    for i in range(4):
        handler(take(i, 8.0), mine)
    assert mine.current() is not None and theirs.voice is None
    html, *_, status, judged = handler(take(9, 8.0), theirs)
    assert 'data-adapted="false"' in html and judged is None and 'data-recordings="1"' in status
    assert mine.voice.recordings == 4 and theirs.voice.recordings == 1
    assert demo.blocks[key].value.voice is None and SessionState(demo)[key].voice is None


def test_calibration_adds_to_the_same_voice_and_uses_at_most_a_minute(adaptive, capsys):
    from ser_core.serve.limits import MAX_CALIBRATION_SECONDS

    visitor, handler = app.VisitorVoice(), upload(adaptive)
    first = take(0, 6.0)
    handler(first, visitor)
    assert visitor.current() is None
    reading = (SR, speech_like(12.0, SR, f0=130.0, seed=30))
    status = app.on_calibrate(adaptive, reading, visitor)
    expected = adaptive.calibrate(reading[1], SR, voice=adaptive.adapt([app.load_signal(first)], SR))
    assert visitor.voice.source == "reference" and visitor.voice.recordings == 1
    np.testing.assert_allclose(visitor.voice.reference.total, expected.reference.total, rtol=1e-6)
    assert 'data-adapted="true"' in status and "s of calibration and 1 recording, " in status
    html, *_, judged = handler(take(1, 3.0), visitor)  # adapted before it: judged relative to the voice
    assert judged is visitor.voice and judged.recordings == 2 and 'data-adapted="true"' in html
    assert verdict_emotion(html) == adaptive.predict(app.load_signal(take(1, 3.0)), SR, voice=judged).emotion

    capsys.readouterr()
    before = visitor.voice.reference_seconds
    app.on_calibrate(adaptive, (SR, speech_like(75.0, SR, f0=130.0, seed=31)), visitor)
    assert 50 < visitor.voice.reference_seconds - before <= MAX_CALIBRATION_SECONDS
    assert app.CALIBRATION_CUT in capsys.readouterr().out
    with pytest.raises(gr.Error, match="no usable speech"):
        app.friendly(functools.partial(app.on_calibrate, adaptive))((SR, np.zeros(5 * SR, np.float32)), visitor)
    assert visitor.voice.recordings == 2  # a failed calibration leaves the voice as it was


def test_forget_clears_the_whole_voice_and_what_was_heard_before_it(adaptive):
    visitor, handler = app.VisitorVoice(), upload(adaptive)
    visitor.calibrate(adaptive, speech_like(8.0, SR, seed=50))
    handler(take(0, 4.0), visitor)
    generation = visitor.generation
    heard = adaptive.hear(app.load_signal(take(1, 4.0)), SR)  # analysed while the visitor resets
    status = app.on_forget(adaptive, visitor)
    assert visitor.voice is None and 'data-adapted="false"' in status and "(nothing yet)" in status
    assert visitor.learn(adaptive, heard, generation) is None and visitor.voice is None
    html, *_, status, judged = handler(take(1, 4.0), visitor)
    assert judged is None and 'data-adapted="false"' in html and 'data-recordings="1"' in status
    assert visitor.voice.reference is None and visitor.voice.recordings == 1
    assert verdict_emotion(html) == adaptive.predict(app.load_signal(take(1, 4.0)), SR).emotion


def test_recordings_and_a_calibration_at_once_lose_nothing(adaptive):
    from concurrent.futures import ThreadPoolExecutor

    visitor = app.VisitorVoice()
    heards = [adaptive.hear(speech_like(3.0, SR, f0=120.0 + i, seed=i), SR) for i in range(12)]
    reading = speech_like(10.0, SR, seed=99)
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(visitor.calibrate, adaptive, reading)]
        jobs += [pool.submit(visitor.learn, adaptive, heard) for heard in heards]
        for job in jobs:
            job.result()
    expected = adaptive.adapt(heards, voice=adaptive.calibrate(reading, SR))
    assert visitor.voice.recordings == 12 and visitor.voice.reference.count == expected.reference.count
    np.testing.assert_allclose(visitor.voice.session.total, expected.session.total, rtol=1e-6)


def live_takes(n: int, sr: int = 48_000):
    """``n`` synthetic sentences with pauses, sent as the browser sends them (half-second chunks),
    and the sound the page receives (16 kHz, chunk by chunk)."""
    pause = np.zeros(int(0.6 * sr), np.float32)
    y = np.concatenate([np.concatenate([speech_like(2.0, sr, f0=120.0 + 9 * i, seed=i), pause]) for i in range(n)])
    sent = [(sr, as_type(y[i : i + sr // 2], "int16")) for i in range(0, y.size, sr // 2)]
    return sent, np.concatenate([app.load_signal(chunk) for chunk in sent])


def test_the_live_tab_learns_from_each_utterance(adaptive):
    """Each utterance the live tab judges teaches the visitor's voice (the windows, which overlap,
    do not); the status line follows it; before the voice knows enough nothing is adapted."""
    visitor, session, statuses = app.VisitorVoice(), None, []
    sent, received = live_takes(4)
    for chunk in sent:
        session, html, _, status = app.on_live_chunk(adaptive, chunk, session, visitor)
        if not isinstance(status, type(gr.skip())):
            statuses.append(status)
    session, html, status = app.on_live_stop(adaptive, session, visitor)
    heard = [w for w in session.utterances if w.prediction is not None]
    assert len(heard) >= 3 and visitor.voice.recordings == len(heard) and session.adapted == [False] * len(heard)
    assert len(statuses) >= len(heard) - 1 and 'data-adapted="false"' in status
    clips = [received[round(w.start * SR) : round(w.end * SR)] for w in heard]
    np.testing.assert_allclose(visitor.voice.session.total, adaptive.adapt(clips, SR).session.total, rtol=1e-5)
    assert 'data-adapted="true"' not in html and app.UTTERANCE_ADAPTED not in html


def test_the_live_tab_is_judged_relative_to_the_voice_once_it_knows_enough(adaptive):
    visitor = app.VisitorVoice()
    visitor.calibrate(adaptive, speech_like(10.0, SR, f0=125.0, seed=60))
    calibrated = visitor.voice
    sent, received = live_takes(3)
    session = None
    for chunk in sent:
        session, html, _, _ = app.on_live_chunk(adaptive, chunk, session, visitor)
    session, html, status = app.on_live_stop(adaptive, session, visitor)
    assert session.voice is not None and session.voice.source == "reference"
    assert 'data-adapted="true"' in html.split("ser-utterances")[0] and session.voice.describe() in html
    heard = [w for w in session.utterances if w.prediction is not None]
    assert len(heard) >= 2 and session.adapted == [True] * len(heard)
    assert html.count(app.UTTERANCE_ADAPTED) == len(heard) and 'data-adapted="true"' in status
    voice = calibrated
    for w in heard:  # each utterance judged relative to the voice including it, as an upload is
        clip = received[round(w.start * SR) : round(w.end * SR)]
        voice = adaptive.adapt([clip], SR, voice=voice)
        assert w.prediction == adaptive.predict(clip, SR, voice=voice)
    assert visitor.voice.recordings == len(heard)


def test_a_model_without_adaptation_learns_nothing_and_shows_no_voice(classifier, monkeypatch):
    monkeypatch.setattr(classifier, "adapted", None)  # a bundle of an older design
    visitor = app.VisitorVoice()
    html, *_, judged = upload(classifier)(take(0, 4.0), visitor)
    assert visitor.voice is None and judged is None and 'data-adapted="false"' in html
    config = app.build_app(classifier).get_config_file()
    shown = {c["props"].get("elem_id"): c["props"].get("visible") for c in config["components"]}
    assert shown["voice"] is False and shown["calibrate"] is False
