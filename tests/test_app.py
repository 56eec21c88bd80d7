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


def analyse_handler(classifier):
    return app.friendly(functools.partial(app.on_audio, classifier))


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
    session, html, chart = handler((48_000, np.full(48_000, np.nan, np.float32)), None)
    assert "NaN" in html and isinstance(chart, type(gr.skip()))
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
    # one set of limits for every interface
    assert app.MAX_UPLOAD_BYTES == LIMITS.max_upload_bytes and app.MAX_SECONDS == LIMITS.max_seconds
