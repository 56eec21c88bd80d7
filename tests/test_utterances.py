"""Utterances: voice activity to utterances on signals with a known layout, real RAVDESS
sentences with known gaps, and the verdict per utterance through the library, CLI, REST and demo."""

from __future__ import annotations

import json
import tracemalloc

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import RAVDESS, speech_like
from test_server import _Server, _wav

from ser_core import audio
from ser_core.errors import ArtifactError, AudioError, ParameterError
from ser_core.inference import utterances as segments

SR = audio.SAMPLE_RATE
ENERGY = segments.Segmentation(detector="energy")
WEBRTC = segments.Segmentation(detector="webrtc")
TOLERANCE = 0.06 + segments.PAD_SECONDS  # s: one 30 ms frame either way, plus the padding
WEBRTC_HANGOVER = 0.1  # s: WebRTC goes on calling speech for a few frames after it ends


def layout(*parts: tuple[str, float], seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Noise bursts ("s", seconds) and silences ("-", seconds) in a row; the signal and the bursts' spans."""
    rng = np.random.default_rng(seed)
    chunks, spans, t = [], [], 0.0
    for kind, seconds in parts:
        n = int(seconds * SR)
        chunks.append(0.2 * rng.standard_normal(n) if kind == "s" else np.zeros(n))
        if kind == "s":
            spans.append((t, t + seconds))
        t += seconds
    return np.concatenate(chunks).astype(np.float32), spans


def found(y: np.ndarray, settings: segments.Segmentation = ENERGY, block: float = 10.0) -> list[tuple[float, float]]:
    step = int(block * SR)
    blocks = [y[i : i + step] for i in range(0, y.size, step)]
    return [(a / SR, (a + s.size) / SR) for a, s in segments.utterances(blocks, settings=settings)]


# ---------------------------------------------------------------- segmentation rules


@pytest.mark.parametrize("detector", ["energy", "webrtc"])
def test_bursts_separated_by_pauses_are_found_with_their_boundaries(detector):
    y, spans = layout(("-", 0.7), ("s", 1.2), ("-", 0.6), ("s", 0.8), ("-", 1.4), ("s", 2.0), ("-", 0.5))
    got = found(y, segments.Segmentation(detector=detector))
    assert len(got) == len(spans)
    for (a, b), (c, d) in zip(spans, got, strict=True):
        assert abs(a - c) <= TOLERANCE and abs(b - d) <= TOLERANCE + (WEBRTC_HANGOVER if detector == "webrtc" else 0)


def test_a_pause_shorter_than_the_minimum_stays_inside_the_utterance():
    short = segments.MIN_PAUSE_SECONDS / 2
    y, _ = layout(("-", 0.5), ("s", 0.8), ("-", short), ("s", 0.8), ("-", 0.5))
    ((start, end),) = found(y)
    assert abs(start - 0.5) <= TOLERANCE and abs(end - (1.3 + short + 0.8)) <= TOLERANCE
    y, _ = layout(("-", 0.5), ("s", 0.8), ("-", 2 * segments.MIN_PAUSE_SECONDS), ("s", 0.8), ("-", 0.5))
    assert len(found(y)) == 2


def test_a_burst_shorter_than_the_minimum_speech_is_dropped():
    y, _ = layout(("-", 0.5), ("s", audio.MIN_SPEECH_SECONDS / 2), ("-", 0.8), ("s", 1.0), ("-", 0.5))
    ((start, _),) = found(y)
    assert start > 1.0


def test_a_long_utterance_is_split_at_its_quietest_point():
    y, _ = layout(("-", 0.5), ("s", 14.0), ("-", 0.5))
    dip = slice(int(6.7 * SR), int(6.8 * SR))  # 6.2 s into the burst: quieter, but no pause
    y[dip] *= 0.1
    got = found(y, WEBRTC)  # the energy rule's noise floor would rise to a burst with so little silence
    assert len(got) == 2
    assert abs(got[0][1] - 6.75) <= 0.06 and got[1][0] == got[0][1]  # no gap, no padding at a split
    assert all(end - start <= segments.MAX_UTTERANCE_SECONDS + segments.PAD_SECONDS for start, end in got)


def test_no_utterance_is_longer_than_the_maximum():
    y, _ = layout(("-", 0.5), ("s", 25.0), ("-", 0.5))
    got = found(y, segments.Segmentation(detector="webrtc", max_seconds=4.0))
    assert len(got) >= 7
    assert all(end - start <= 4.0 + segments.PAD_SECONDS for start, end in got)
    assert abs(got[0][0] - 0.5) <= TOLERANCE and abs(got[-1][1] - 25.5) <= TOLERANCE + WEBRTC_HANGOVER


@pytest.mark.parametrize("detector", segments.DETECTORS)
def test_the_block_size_does_not_change_the_utterances(detector):
    y = np.concatenate([speech_like(1.5, seed=1), np.zeros(SR // 2), speech_like(2.5, seed=2), np.zeros(SR)])
    settings = segments.Segmentation(detector=detector)
    whole = found(y, settings, block=100.0)
    assert whole == found(y, settings, block=0.37) == found(y, settings, block=1.0)


@pytest.mark.parametrize("detector", ["energy", "silero"])
def test_the_segmenter_fed_as_audio_arrives_finds_what_the_generator_finds(detector, rng):
    """Blocks of any size, down to a few samples: the same utterances, sample for sample, each
    handed back by the block in which its pause reaches the minimum."""
    y = np.concatenate([speech_like(1.5, seed=1), np.zeros(SR // 2), speech_like(2.5, seed=2), np.zeros(SR)])
    settings = segments.Segmentation(detector=detector)
    whole = list(segments.utterances([y], settings=settings))
    segmenter = segments.Segmenter(settings)
    fed, got = 0, []
    while fed < y.size:
        size = int(rng.integers(1, 3000))
        for start, samples in segmenter.feed(y[fed : fed + size]):
            pause_end = start + samples.size - segmenter._pad + segmenter._min_pause * segmenter.frame
            assert fed + size >= pause_end - segmenter.frame and fed < pause_end + segmenter.frame
            got.append((start, samples))
        fed += size
    got += segmenter.finish()
    assert segmenter.finish() == [] and segmenter.samples == y.size
    assert [a for a, _ in got] == [a for a, _ in whole] and len(got) >= 1
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, whole, strict=True))
    with pytest.raises(ParameterError, match="finished"):
        segmenter.feed(y[:100])


def test_long_recordings_are_segmented_in_bounded_memory():
    block, _ = layout(("-", 0.6), ("s", 2.4), ("-", 1.0), ("s", 6.0))  # 10 s
    blocks = (block for _ in range(60))  # 10 minutes, never held at once
    tracemalloc.start()
    count = sum(1 for _ in segments.utterances(blocks, settings=ENERGY))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 120
    assert peak < 8 * 2**20  # the recording is 38 MB as float32


def test_silence_and_digital_zeros_give_no_utterance():
    assert found(np.zeros(5 * SR, np.float32)) == []
    assert found(np.zeros(5 * SR, np.float32), segments.Segmentation()) == []


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"detector": "nope"}, "Unknown voice-activity detector"),
        ({"min_speech_seconds": 0.0}, "min_speech_seconds"),
        ({"max_seconds": 0.5}, "min_speech_seconds"),
        ({"pad_seconds": 0.2}, "pad_seconds"),
        ({"pad_seconds": -0.1}, "pad_seconds"),
        ({"threshold": 1.0}, "threshold"),
    ],
)
def test_bad_settings_are_one_sentence(kwargs, needle):
    with pytest.raises(ParameterError, match=needle):
        segments.Segmentation(**kwargs)


def test_a_tampered_silero_model_is_refused(monkeypatch):
    monkeypatch.setattr(segments, "_silero_session", None)
    monkeypatch.setattr(segments, "SILERO_SHA256", "0" * 64)
    with pytest.raises(ArtifactError, match="checksum"):
        segments.detector("silero")


# ---------------------------------------------------------------- real speech


@pytest.fixture(scope="module")
def sentences() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Six RAVDESS sentences of actor 02 (trimmed as in training) with gaps of 0.4-1.2 s."""
    if not RAVDESS.is_dir():
        pytest.skip(f"RAVDESS is not at {RAVDESS}")
    files = sorted((RAVDESS / "Actor_02").glob("*.flac"))[::10][:6]
    gaps = [0.8, 0.4, 1.2, 0.6, 0.9, 0.5, 0.8]
    parts, spans, t = [np.zeros(int(gaps[0] * SR), np.float32)], [], gaps[0]
    for f, gap in zip(files, gaps[1:], strict=True):
        speech = audio.trim_silence(audio.load(f))
        parts += [speech, np.zeros(int(gap * SR), np.float32)]
        spans.append((t, t + speech.size / SR))
        t += speech.size / SR + gap
    return np.concatenate(parts), spans


@pytest.mark.parametrize("detector", segments.DETECTORS)
def test_ravdess_sentences_with_known_gaps(sentences, detector):
    y, spans = sentences
    got = found(y, segments.Segmentation(detector=detector))
    assert len(got) == len(spans)
    for (a, b), (c, d) in zip(spans, got, strict=True):
        assert abs(a - c) <= 0.25 and abs(b - d) <= 0.25


# ---------------------------------------------------------------- verdicts


def test_each_utterance_is_judged_as_predict_judges_it(classifier):
    y = np.concatenate([speech_like(1.5, seed=3), np.zeros(SR), speech_like(5.0, seed=4)])  # one clip, one pooled
    result = classifier.utterances(y, SR, detector="energy")
    assert len(result.windows) == 2 and result.detector == "energy"
    for u in result.windows:
        expected = classifier.predict(y[round(u.start * SR) : round(u.end * SR)], SR)
        assert u.prediction.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert result.duration == pytest.approx(y.size / SR)


def test_a_voice_calibrates_every_utterance(classifier, sentences):
    y, _ = sentences
    voice = classifier.calibrate(y[: 5 * SR], SR)
    plain, calibrated = classifier.utterances(y, SR), classifier.utterances(y, SR, voice=voice)
    u = calibrated.windows[0]
    expected = classifier.predict(y[round(u.start * SR) : round(u.end * SR)], SR, voice=voice)
    assert u.prediction.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert [w.prediction.probabilities for w in plain.windows] != [
        w.prediction.probabilities for w in calibrated.windows
    ]


def test_a_file_and_its_samples_agree(classifier, tmp_path):
    y = np.concatenate([speech_like(1.5, seed=4), np.zeros(SR // 2), speech_like(2.0, seed=5)])
    path = tmp_path / "two.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")
    assert (
        classifier.utterances(path, detector="energy").to_dict()
        == classifier.utterances(y, SR, detector="energy").to_dict()
    )


@pytest.mark.parametrize(
    "source, message",
    [
        (np.zeros(3 * SR, np.float32), "No speech was found"),
        (np.full(SR, np.nan, np.float32), "NaN or infinite"),
        (np.zeros(0, np.float32), "empty"),
    ],
    ids=["silence", "nan", "empty"],
)
def test_unusable_input_is_one_sentence(classifier, source, message):
    with pytest.raises(AudioError, match=message):
        classifier.utterances(source, SR)


def test_the_json_names_its_rows_utterances(classifier):
    y = np.concatenate([speech_like(1.5, seed=6), np.zeros(SR), speech_like(1.5, seed=7)])
    out = classifier.utterances(y, SR, detector="energy").to_dict()
    assert {"duration", "summary", "shares", "detector", "utterances"} == set(out)
    assert [u["speech"] for u in out["utterances"]] == [True, True]
    assert out["utterances"][0]["end"] < out["utterances"][1]["start"]


# ---------------------------------------------------------------- interfaces


@pytest.fixture(scope="module")
def two_phrases(tmp_path_factory):
    path = tmp_path_factory.mktemp("segments") / "two.wav"
    sf.write(str(path), np.concatenate([speech_like(1.5, seed=8), np.zeros(SR), speech_like(2.0, seed=9)]), SR)
    return path


def test_cli_segments_csv_and_json(cli, two_phrases):
    rows = cli("timeline", "--segments", "--detector", "energy", "--csv", two_phrases).stdout.splitlines()
    assert rows[0].startswith("start,end,speech,emotion,confidence,") and len(rows) == 3
    proc = cli("timeline", "--segments", "--detector", "energy", "--json", two_phrases)
    obj = json.loads(proc.stdout)
    assert obj["path"] == str(two_phrases) and obj["detector"] == "energy" and len(obj["utterances"]) == 2
    last = cli("timeline", "--segments", "--detector", "energy", two_phrases).stdout.splitlines()[-1]
    assert last.startswith("overall: ") and " 2 utterances" in last


def test_cli_segments_of_silence_and_of_two_files_are_one_line(cli, tmp_path, two_phrases):
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(2 * SR), SR)
    proc = cli("timeline", "--segments", silent)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "error:" in proc.stderr
    proc = cli("timeline", "--segments", two_phrases, two_phrases)
    assert proc.returncode == 2 and "--segments takes one recording" in proc.stderr


@pytest.fixture(scope="module")
def base(bundle_dir):
    from ser_core import EmotionClassifier
    from ser_core.serve.rest import create_app

    with _Server(create_app(EmotionClassifier.load(bundle_dir))) as server:
        yield server.url


def test_rest_segments_matches_the_library(base, classifier, two_phrases):
    r = httpx.post(
        f"{base}/v1/segments",
        params={"detector": "energy"},
        files={"file": ("two.wav", two_phrases.read_bytes())},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    expected = classifier.utterances(two_phrases, detector="energy").to_dict()
    assert r.json() == {"path": "two.wav", **json.loads(json.dumps(expected)), "adapted": None}


@pytest.mark.parametrize(
    "params, content, status, needle",
    [
        ({}, _wav(np.zeros(2 * SR)), 422, "No speech"),
        ({"detector": "nope"}, _wav(speech_like(1.0)), 422, "detector"),
        ({}, b"not audio at all", 415, "could not be decoded"),
    ],
    ids=["silence", "bad-detector", "not-audio"],
)
def test_rest_segments_errors_are_one_sentence(base, params, content, status, needle):
    r = httpx.post(f"{base}/v1/segments", params=params, files={"file": ("a.wav", content)}, timeout=60)
    assert r.status_code == status and needle in r.json()["error"]


def test_demo_draws_a_band_and_a_row_per_utterance(classifier, two_phrases):
    from ser_core.serve import gradio_app as app

    y = audio.load(two_phrases)
    utterances = classifier.utterances(y, SR, detector="energy")
    fig = app.utterance_figure(y, utterances)
    assert len(fig.layout.shapes) == 2
    labels = [a.text for a in fig.layout.annotations]
    assert labels == [app._label(u.prediction.emotion) for u in utterances.windows]
    assert [s.fillcolor for s in fig.layout.shapes] == [app.COLOURS[u.prediction.emotion] for u in utterances.windows]
    rows = app.utterance_rows(utterances)
    assert [r[:2] for r in rows] == [[round(u.start, 2), round(u.end, 2)] for u in utterances.windows]
    for row, u in zip(rows, utterances.windows, strict=True):
        intensity = u.prediction.intensity
        assert len(row) == len(app.UTTERANCE_COLUMNS)
        assert row[4] == ("" if intensity is None else f"{intensity.level} ({intensity.strength:.0%} chance of strong)")


def test_demo_shows_utterances_only_beyond_one_phrase(classifier, sentences):
    from ser_core.serve import gradio_app as app

    y, spans = sentences
    bands, table = app.on_segments(classifier, (SR, y))
    assert bands["visible"] and len(bands["value"].layout.shapes) == len(spans) == len(table["value"])
    short = y[: int(2.5 * SR)]
    assert [u["visible"] for u in app.on_segments(classifier, (SR, short))] == [False, False]
