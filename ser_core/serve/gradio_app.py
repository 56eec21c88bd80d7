"""The Gradio demo: record or upload speech, see which emotion it carries.

Everything the page does is a plain function here, so tests can call it without a server:
:func:`analyse` turns audio into an :class:`Analysis`, the ``render_*`` functions turn
results into HTML and Plotly figures, the ``on_*`` handlers wire them to Gradio events and
turn every failure into one :class:`gradio.Error` sentence. :func:`build_app` lays out the
page; :func:`launch_options` holds what ``Blocks.launch`` needs (theme, CSS, upload limit).
``demo.py`` is only argument parsing around these two.

The demo learns each visitor's voice as they use it: a :class:`VisitorVoice` per browser session
(a ``gr.State``, in memory only, never on disk, never shared) grows with the features of every
recording analysed (uploads, microphone recordings, the live tab's utterances: computed once,
:meth:`EmotionClassifier.hear`, then judged and learned from) and with the calibration step's
reading; the reset forgets it. Once it knows enough (:attr:`Voice.source`), verdicts, bars,
timelines, utterances and the live tab are judged relative to it and say so.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio
from ..errors import FROM_FILE, FROM_MICROPHONE, AudioError, NoSpeechError, SERError
from ..inference import EmotionClassifier, Prediction, Timeline, Utterances, Voice, Window, result_row
from ..inference.classifier import Heard
from ..inference.intensity import describe
from ..inference.voice import adapted
from .limits import LIMITS, MAX_CALIBRATION_SECONDS, Budget
from .stream import Listener

__all__ = [
    "Analysis",
    "VisitorVoice",
    "on_calibrate",
    "on_forget",
    "LiveSession",
    "analyse",
    "api_predict",
    "build_app",
    "launch_options",
    "live_step",
    "load_signal",
    "on_segments",
    "on_live_stop",
    "render_live_utterances",
    "render_voice",
    "utterance_figure",
    "utterance_rows",
    "uncertainty",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- constants (the one place)

EMOJIS = {
    "neutral": "😐",
    "calm": "😌",
    "happy": "😄",
    "angry": "😠",
    "fearful": "😨",
    "disgust": "🤢",
    "surprised": "😲",
}
COLOURS = {  # mid-tone colours readable on light and dark backgrounds
    "neutral": "#94a3b8",
    "calm": "#38bdf8",
    "happy": "#facc15",
    "angry": "#ef4444",
    "fearful": "#a855f7",
    "disgust": "#22c55e",
    "surprised": "#f97316",
}
UNKNOWN_EMOJI = "🤔"
MUTED_OPACITY = 0.35  # bars that did not win
PLOT_TOP_MARGIN = 46  # px left free under the Gradio label that overlays a plot's top

WAVEFORM_POINTS = 2_000  # the waveform is drawn as the min and max of this many stretches
BAND_OPACITY = 0.30  # utterance bands over the waveform
UTTERANCE_COLUMNS = ["start (s)", "end (s)", "emotion", "confidence", "intensity"]

MIN_CONFIDENCE = 0.40  # below this the verdict is shown as a guess
MIN_MARGIN = 0.10  # a winner closer than this to the runner-up is a near tie

MAX_UPLOAD_BYTES = LIMITS.max_upload_bytes  # enforced by Gradio (launch max_file_size) before the handler runs
MAX_SECONDS = LIMITS.max_seconds  # enforced from the header, or while decoding, before any analysis

LIVE_STREAM_EVERY = 1.0  # seconds of microphone audio per live update
LIVE_TIME_LIMIT = 120  # seconds a live session may run
LIVE_MIN_SECONDS = 1.0  # sound needed before the first live verdict
LIVE_UTTERANCES_SHOWN = 8  # the live tab lists this many of the last utterances, newest first
ANALYSIS_CONCURRENCY = 2  # simultaneous uploads/recordings analysed (one per CPU core)
LIVE_CONCURRENCY = 40  # simultaneous live SESSIONS: a stream keeps its slot for its whole run (up to LIVE_TIME_LIMIT); a 1 s chunk is ~17 ms of work
CACHE_SWEEP = (300, 900)  # every 5 min, delete uploads and CSVs older than 15 min: all are gone within 20
CACHE_PREFIX = "ser-demo-"  # the demo's own Gradio cache folder, one per port: ser-demo-7860

SUGGESTED_SENTENCES = (
    ("happy", "Kids are talking by the door!", "smile while you say it, a little faster and higher"),
    ("angry", "Dogs are sitting by the door!", "clipped, loud, stress on every word"),
    ("calm", "Kids are talking by the door.", "slow and soft, as if reading at bedtime"),
    ("fearful", "Dogs are sitting by the door?", "tense and breathy, pitch rising"),
    ("surprised", "Kids are talking by the door?!", "wide pitch jump on 'door'"),
    ("disgust", "Dogs are sitting by the door.", "drawn out, nose wrinkled"),
    ("neutral", "Kids are talking by the door.", "flat, like reading a list"),
)

FRIENDLY_FAILURE = "Something went wrong while analysing the audio; try again, or try another recording or file."
NO_AUDIO = "No audio was received; record with the microphone or upload a file, then wait for the upload to finish."
CALIBRATION_TEXT = (
    "“The weather today is mild, and the bus to the station leaves at half past nine, as it does every weekday. "
    "The shop on the corner opens at eight and closes at six. On Saturdays the market fills the square with "
    "fruit, bread and flowers, and most people walk there instead of driving.”"
)
CALIBRATION_CUT = (
    f"Your reading is longer than a minute: its first {MAX_CALIBRATION_SECONDS:g} s were added to your voice."
)
ADAPTED_NOTE = "Verdicts, bars, timelines and the live tab are now relative to how you usually sound."
SWITCHED_ON_NOTE = (
    "Judged against the voices the model was trained on; with this recording the demo knows enough of your "
    "voice, so your next recordings are judged relative to it."
)
VOICE_PRIVACY = "Kept as a few numbers, never the audio, for this browser tab only; “Forget my voice” clears it."
BARS_LABEL = "Probability of each emotion"
TIMELINE_LABEL = "Emotion over time"
UTTERANCES_LABEL = "Utterances"
UTTERANCE_TABLE_LABEL = "Each utterance"
ADAPTED_LABEL = " (relative to your voice)"  # appended to the labels above when judged relative to the voice
UTTERANCE_ADAPTED = ' <span class="ser-adapted" title="judged relative to your voice">· your voice</span>'

CSS = """
.ser-verdict {border-radius: 14px; padding: 14px 18px; border: 2px solid var(--ser-colour, #94a3b8);
  background: color-mix(in srgb, var(--ser-colour, #94a3b8) 14%, transparent);}
.ser-verdict .ser-head {display: flex; align-items: center; gap: 14px; flex-wrap: wrap;}
.ser-verdict .ser-emoji {font-size: 3rem; line-height: 1;}
.ser-verdict .ser-emotion {font-size: 1.8rem; font-weight: 700; text-transform: capitalize;}
.ser-verdict .ser-confidence {font-size: 1.05rem; opacity: 0.85;}
.ser-verdict .ser-note {margin-top: 8px; font-size: 0.98rem;}
.ser-verdict.ser-unsure {border-style: dashed;}
.ser-verdict.ser-waiting {border-style: dotted; opacity: 0.8;}
.ser-pill {display: inline-block; padding: 2px 10px; border-radius: 999px; margin: 2px 4px 2px 0;
  background: var(--ser-colour); color: #111; font-weight: 600; white-space: nowrap;}
.ser-limits {font-size: 0.9rem; opacity: 0.8;}
.ser-voice {font-size: 0.98rem; padding: 8px 12px; border-radius: 10px; border: 1px dashed #94a3b8;}
.ser-voice[data-adapted=true] {border: 1px solid #22c55e; background: color-mix(in srgb, #22c55e 10%, transparent);}
.ser-voice .ser-privacy {font-size: 0.86rem; opacity: 0.75; margin-top: 2px;}
.ser-verdict .ser-voice-note {opacity: 0.85;}
.ser-utterances .ser-adapted {font-size: 0.86rem; opacity: 0.8;}
.ser-utterances {margin-top: 10px;} .ser-utterances ol {margin: 4px 0 0 0; padding-left: 1.4em;}
.ser-utterances li {margin: 2px 0;} .ser-utterances .ser-when {opacity: 0.75; font-size: 0.92rem;}
@media (max-width: 640px) { .ser-verdict .ser-emoji {font-size: 2.4rem;} .ser-verdict .ser-emotion {font-size: 1.4rem;} }
"""


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Analysis:
    """What the page shows for one recording: the verdict, for long audio the timeline, and the
    voice both were judged relative to (``None``: the model's own, not adapted)."""

    prediction: Prediction
    duration: float
    timeline: Timeline | None = None
    voice: Voice | None = None


def uncertainty(prediction: Prediction) -> str | None:
    """A sentence saying why the verdict is only a guess, or ``None`` when the model is sure."""
    ranked = sorted(prediction.probabilities.items(), key=lambda kv: kv[1], reverse=True)
    (first, p1), (second, p2) = ranked[0], ranked[1]
    if p1 - p2 < MIN_MARGIN:
        return (
            f"The model is unsure: {first} ({p1:.0%}) and {second} ({p2:.0%}) are nearly tied, "
            "so treat this as a guess; try a longer or more expressive recording."
        )
    if p1 < MIN_CONFIDENCE:
        return (
            f"The model is unsure: its best guess, {first}, has only {p1:.0%} confidence; "
            "try a longer or more expressive recording."
        )
    return None


# ---------------------------------------------------------------- audio in


AudioInput = str | os.PathLike | tuple[int, np.ndarray] | None


def load_signal(source: AudioInput) -> np.ndarray:
    """A file path or a Gradio ``(sample_rate, samples)`` pair -> mono float32 at 16 kHz.

    Raises :class:`AudioError` for missing, undecodable or over-long audio. Files are
    decoded block by block and rejected as soon as they pass :data:`MAX_SECONDS`.
    """
    if source is None:
        raise AudioError(NO_AUDIO)
    if isinstance(source, (str, os.PathLike)):
        return audio.load(source, max_seconds=MAX_SECONDS)
    if not isinstance(source, (tuple, list)) or len(source) != 2:
        raise AudioError(NO_AUDIO)
    sample_rate, samples = source
    return audio.load(samples, sample_rate, max_seconds=MAX_SECONDS)


def analyse(
    clf: EmotionClassifier, source: AudioInput, voice: Voice | None = None, *, visitor: VisitorVoice | None = None
) -> Analysis:
    """The verdict on a recording; longer than one window, also its emotion timeline.

    The verdict is always :meth:`EmotionClassifier.predict`'s (computed as ``judge(hear(x))``,
    its equal), so the page, the ``predict`` API and the library agree on every file (silence
    trimmed first; speech longer than a window is the mean over windows). With ``visitor``, the
    recording's features, computed once, also teach the visitor's voice, and the recording is
    judged with the voice :meth:`VisitorVoice.learn` returns instead of ``voice``.
    """
    generation = None if visitor is None else visitor.generation  # a reset meanwhile: nothing learned
    y = load_signal(source)
    duration = y.size / audio.SAMPLE_RATE
    heard = clf.hear(y, audio.SAMPLE_RATE)
    if visitor is not None:
        voice = visitor.learn(clf, heard, generation)
    if heard.long:  # its clips are the timeline's windows: judged once, the verdict is their summary
        timeline = clf.judge_timeline(heard, voice)
        return Analysis(timeline.summary, duration, timeline, voice)
    prediction = clf.judge(heard, voice)
    if duration <= clf.preprocessing.clip_seconds:
        return Analysis(prediction, duration, None, voice)
    return Analysis(prediction, duration, clf.timeline(y, audio.SAMPLE_RATE, voice=voice), voice)


# ---------------------------------------------------------------- rendering


def _label(emotion: str) -> str:
    return f"{EMOJIS.get(emotion, '')} {emotion}"


def render_verdict(prediction: Prediction, *, detail: str = "", voice_note: str = "", adapted: bool = False) -> str:
    """An HTML card: emoji, emotion in its colour with how strongly it is expressed ("strongly
    angry"), confidence and strength, a note when unsure, and ``voice_note`` on the visitor's
    voice; ``data-adapted`` says whether it was judged relative to that voice."""
    doubt = uncertainty(prediction)
    colour = COLOURS.get(prediction.emotion, "#94a3b8")
    emoji = UNKNOWN_EMOJI if doubt else EMOJIS.get(prediction.emotion, "")
    intensity = prediction.intensity
    title = f"maybe {prediction.emotion}?" if doubt else describe(prediction.emotion, intensity)
    strength = (
        f'<span class="ser-confidence ser-strength">strength {intensity.strength:.0%}</span>' if intensity else ""
    )
    notes = [f'<div class="ser-note">{doubt}</div>'] if doubt else []
    if detail:
        notes.append(f'<div class="ser-note">{detail}</div>')
    if voice_note:
        notes.append(f'<div class="ser-note ser-voice-note">{voice_note}</div>')
    return (
        f'<div class="ser-verdict{" ser-unsure" if doubt else ""}" style="--ser-colour:{colour}" '
        f'data-emotion="{prediction.emotion}" data-unsure="{str(bool(doubt)).lower()}" '
        f'data-adapted="{str(adapted).lower()}">'
        f'<div class="ser-head"><span class="ser-emoji">{emoji}</span>'
        f'<span class="ser-emotion">{title}</span>'
        f'<span class="ser-confidence">{prediction.confidence:.0%} confidence</span>{strength}</div>'
        f"{''.join(notes)}</div>"
    )


def render_waiting(message: str) -> str:
    """A neutral card for the live tab while there is nothing to judge yet."""
    return f'<div class="ser-verdict ser-waiting"><div class="ser-note">🎙️ {message}</div></div>'


def _layout(fig: Any, *, height: int) -> Any:
    """Transparent background and grey text so a figure reads in light and dark mode."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": PLOT_TOP_MARGIN, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"color": "#8b95a5", "size": 13},
        hovermode="closest",
    )
    grid = "rgba(139,149,165,0.25)"
    fig.update_xaxes(gridcolor=grid, zerolinecolor=grid)
    fig.update_yaxes(gridcolor=grid, zerolinecolor=grid)
    return fig


def probability_chart(prediction: Prediction) -> Any:
    """Horizontal bars of all class probabilities in fixed order, percentages on the bars,
    the winner in full colour and the others muted."""
    import plotly.graph_objects as go

    labels = list(prediction.probabilities)
    values = [prediction.probabilities[k] * 100 for k in labels]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[_label(k) for k in labels],
            orientation="h",
            marker={
                "color": [COLOURS.get(k, "#94a3b8") for k in labels],
                "opacity": [1.0 if k == prediction.emotion else MUTED_OPACITY for k in labels],
                "line": {"width": [2 if k == prediction.emotion else 0 for k in labels], "color": "#8b95a5"},
            },
            text=[f"{v:.0f}%" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    fig.update_xaxes(range=[0, 112], ticksuffix="%", fixedrange=True)
    fig.update_yaxes(autorange="reversed", fixedrange=True)
    return _layout(fig, height=300)


def empty_probability_chart(labels: tuple[str, ...]) -> Any:
    """The bar chart before any verdict: every class at 0%. Shown with the page, so the browser
    loads Plotly up front instead of after the first verdict (about 1.5 s saved)."""
    return probability_chart(Prediction(emotion="", confidence=0.0, probabilities={k: 0.0 for k in labels}))


def timeline_chart(times: list[float], probabilities: list[dict[str, float] | None], labels: tuple[str, ...]) -> Any:
    """One line per emotion over time (window centres, seconds); gaps where there was no speech."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label in labels:
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[None if p is None else p[label] * 100 for p in probabilities],
                name=_label(label),
                mode="lines+markers",
                line={"color": COLOURS.get(label, "#94a3b8"), "width": 2.5, "shape": "spline", "smoothing": 0.6},
                marker={"size": 5},
                connectgaps=False,
                hovertemplate=f"{_label(label)}: %{{y:.0f}}% at %{{x:.1f}} s<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="seconds", rangemode="tozero")
    fig.update_yaxes(range=[0, 104], ticksuffix="%")
    fig.update_layout(legend={"orientation": "h", "y": -0.25, "x": 0}, showlegend=True)
    return _layout(fig, height=340)


def timeline_figure(timeline: Timeline) -> Any:
    """The timeline chart of a :class:`Timeline` (points at window centres)."""
    times = [(w.start + w.end) / 2 for w in timeline.windows]
    probs = [None if w.prediction is None else w.prediction.probabilities for w in timeline.windows]
    return timeline_chart(times, probs, timeline.labels)


def timeline_detail(analysis: Analysis) -> str:
    """One line about a long recording: duration, windows, and how often each emotion won."""
    t = analysis.timeline
    if t is None:
        return f"{analysis.duration:.1f} s of audio, judged as one window."
    shares = sorted(((v, k) for k, v in t.shares().items() if v > 0), reverse=True)
    pills = "".join(
        f'<span class="ser-pill" style="--ser-colour:{COLOURS.get(k, "#94a3b8")}">{_label(k)} {v:.0%}</span>'
        for v, k in shares
    )
    return (
        f"Overall verdict for {analysis.duration:.1f} s of audio. The timeline below has {len(t.voiced)} "
        f"windows with speech (of {len(t.windows)}). Windows won: {pills}"
    )


def write_csv(timeline: Timeline) -> str:
    """Write the timeline CSV into Gradio's cache folder, where Gradio serves it without a copy
    and deletes it with the uploads (on the :data:`CACHE_SWEEP` schedule, and when it stops)."""
    from gradio.utils import get_upload_folder

    folder = get_upload_folder()
    os.makedirs(folder, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix="emotion-timeline-", suffix=".csv", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
        f.write(timeline.to_csv())
    return path


def utterance_figure(y: np.ndarray, utterances: Utterances) -> Any:
    """The waveform over time (seconds) with a band over each utterance in its emotion's colour,
    labelled with the emotion (grey and unlabelled without a verdict)."""
    import plotly.graph_objects as go

    sr = audio.SAMPLE_RATE
    n = max(1, min(WAVEFORM_POINTS, y.size))
    edges = np.linspace(0, y.size, n + 1).astype(int)
    low = np.minimum.reduceat(y, edges[:-1])
    high = np.maximum.reduceat(y, edges[:-1])
    times = edges[:-1] / sr
    fig = go.Figure(
        go.Scatter(
            x=np.repeat(times, 2),
            y=np.column_stack([low, high]).ravel(),
            mode="lines",
            line={"color": "#8b95a5", "width": 1},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for u in utterances.windows:
        p = u.prediction
        fig.add_vrect(
            x0=u.start,
            x1=u.end,
            fillcolor=COLOURS.get(p.emotion, "#94a3b8") if p else "#94a3b8",
            opacity=BAND_OPACITY,
            line_width=0,
            annotation_text=_label(p.emotion) if p else "",
            annotation_position="top left",
        )
    fig.update_xaxes(title_text="seconds", range=[0, y.size / sr])
    fig.update_yaxes(visible=False, range=[-1.15, 1.15])
    return _layout(fig, height=260)


def utterance_rows(utterances: Utterances) -> list[list]:
    """The table of utterances: start, end, emotion, confidence, intensity ("strong (81% chance of
    strong)"; blank for neutral, and everything blank without a verdict)."""
    rows = []
    for u in utterances.windows:
        p = u.prediction
        if p is None:
            verdict = ["(too short to judge)", "", ""]
        else:
            strength = p.intensity.text if p.intensity else ""
            verdict = [_label(p.emotion), f"{p.confidence:.0%}", strength]
        rows.append([round(u.start, 2), round(u.end, 2), *verdict])
    return rows


def on_segments(clf: EmotionClassifier, source: AudioInput, voice: Voice | None = None) -> tuple:
    """A recording longer than one phrase -> (utterance bands, table of utterances), judged
    relative to ``voice`` (the one its verdict was judged with) and labelled so; both hidden for
    a shorter one or when no utterance is found (the verdict above says why)."""
    import gradio as gr

    hidden = gr.update(value=None, visible=False)
    y = load_signal(source)
    if y.size <= clf.preprocessing.n_samples:
        return hidden, hidden
    try:
        utterances = clf.utterances(y, audio.SAMPLE_RATE, voice=voice)
    except AudioError:
        return hidden, hidden
    suffix = ADAPTED_LABEL if adapted(voice) is not None else ""
    return (
        gr.update(value=utterance_figure(y, utterances), visible=True, label=UTTERANCES_LABEL + suffix),
        gr.update(value=utterance_rows(utterances), visible=True, label=UTTERANCE_TABLE_LABEL + suffix),
    )


# ---------------------------------------------------------------- live mode


@dataclass
class LiveSession:
    """One visitor's live stream: the last window of sound and the verdicts so far, and the
    utterances judged as each ended (:class:`~ser_core.serve.stream.Listener`, the live stream's).

    Timeline times are wall-clock seconds since the first chunk: the browser sends short chunks
    and may drop some under load, so the sound received is not a clock. Utterance times are
    seconds of the sound received. ``voice`` is the voice the current verdict was judged relative
    to (``None``: not adapted); ``adapted`` says it of each utterance.
    """

    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    started: float | None = None
    last_judged: float | None = None
    times: list[float] = field(default_factory=list)
    probabilities: list[dict[str, float] | None] = field(default_factory=list)
    current: Prediction | None = None
    status: str = "Listening… keep talking."
    listener: Listener | None = None
    utterances: list[Window] = field(default_factory=list)
    stopped: bool = False  # the recording stopped: its last utterance is judged, later chunks add none
    voice: Voice | None = None
    adapted: list[bool] = field(default_factory=list)

    def add(self, y: np.ndarray, keep: int) -> None:
        """Append 16 kHz samples, keeping only the last ``keep`` (one analysis window)."""
        self.buffer = np.concatenate([self.buffer, y])[-keep:]


def live_step(
    clf: EmotionClassifier,
    session: LiveSession | None,
    chunk: AudioInput,
    *,
    now: float | None = None,
    visitor: VisitorVoice | None = None,
) -> tuple[LiveSession, bool]:
    """Add one streamed chunk; about once every :data:`LIVE_STREAM_EVERY` seconds, judge the
    last window (at most 3.5 s: a few ms of work). Each utterance that ends in the chunk is
    judged at once and added to ``session.utterances``. Returns the session and whether a new
    timeline point was added. Silence is a status, not an error: the stream keeps going.

    With ``visitor``, each utterance teaches the visitor's voice (:meth:`VisitorVoice.learn`, which
    also says how it is judged), and the last window is judged relative to the voice once it knows
    enough. The windows, which overlap, teach it nothing: the utterances are the same sound.
    """
    session = session if session is not None else LiveSession()
    now = time.monotonic() if now is None else now
    if chunk is None:
        return session, False
    y = load_signal(chunk)
    session.add(y, clf.preprocessing.n_samples)
    if not session.stopped:
        if session.listener is None:
            session.listener = Listener(clf, learn=_live_learner(clf, session, visitor))
        session.utterances.extend(session.listener.feed(y))
    if session.started is None:
        session.started = now
    if session.buffer.size < LIVE_MIN_SECONDS * audio.SAMPLE_RATE:
        return session, False
    if session.last_judged is not None and now - session.last_judged < LIVE_STREAM_EVERY:
        return session, False
    session.last_judged = now
    session.times.append(round(now - session.started, 2))
    session.voice = None if visitor is None else visitor.current()
    try:
        session.current = clf.predict(session.buffer, audio.SAMPLE_RATE, voice=session.voice)
    except AudioError:
        session.probabilities.append(None)
        session.current = None
        session.status = "No speech in the last few seconds; speak closer to the microphone."
        return session, True
    session.probabilities.append(session.current.probabilities)
    session.status = f"The last {session.buffer.size / audio.SAMPLE_RATE:.1f} s of sound, at {session.times[-1]:.0f} s."
    return session, True


def _live_learner(
    clf: EmotionClassifier, session: LiveSession, visitor: VisitorVoice | None
) -> Callable[[Heard], Voice | None] | None:
    """What the live session's :class:`Listener` hands each utterance to: the visitor's voice learns
    from it and says which voice judges it, and the session notes whether that was adapted.
    ``None`` (judged without a voice) without a visitor or an adapted model."""
    if visitor is None or clf.adapted is None:
        return None

    def learn(heard: Heard) -> Voice | None:
        voice = visitor.learn(clf, heard)
        session.adapted.append(voice is not None)
        return voice

    return learn


# ---------------------------------------------------------------- handlers


def friendly(fn: Callable, *, source: str = FROM_FILE) -> Callable:
    """Turn :class:`SERError` into its sentence and anything unexpected into a generic one, as gr.Error.

    ``source`` is where the handler's audio comes from (:data:`~ser_core.errors.FROM_MICROPHONE`
    for a recording): audio without speech is told what to do about that source.
    """
    import gradio as gr

    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "handler")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except NoSpeechError as e:
            raise gr.Error(
                str(e.for_source(source)), title="Cannot analyse this audio", print_exception=False
            ) from None
        except SERError as e:
            raise gr.Error(str(e), title="Cannot analyse this audio", print_exception=False) from None
        except Exception:
            log.exception("Unexpected failure in %s", name)
            raise gr.Error(FRIENDLY_FAILURE, title="Cannot analyse this audio", print_exception=False) from None

    return wrapper


def on_audio(clf: EmotionClassifier, source: AudioInput, visitor: VisitorVoice | None = None) -> tuple:
    """Upload or finished recording -> (verdict HTML, bar chart, timeline chart, CSV file, the
    voice status, the voice it was judged relative to: ``None`` or an adapted one, for the
    utterances that follow). With ``visitor`` the recording also teaches the visitor's voice."""
    import gradio as gr

    result = analyse(clf, source, visitor=visitor)
    note = ""
    if result.voice is not None:
        note = result.voice.describe()
    elif visitor is not None and visitor.current() is not None:  # this recording completed the voice
        note = SWITCHED_ON_NOTE
    suffix = ADAPTED_LABEL if result.voice is not None else ""
    verdict = render_verdict(
        result.prediction, detail=timeline_detail(result), voice_note=note, adapted=result.voice is not None
    )
    bars = gr.update(value=probability_chart(result.prediction), label=BARS_LABEL + suffix)
    status = gr.skip() if visitor is None else render_voice(visitor.voice or clf.voice())
    if result.timeline is None:
        hidden = gr.update(value=None, visible=False)
        return verdict, bars, hidden, hidden, status, result.voice
    return (
        verdict,
        bars,
        gr.update(value=timeline_figure(result.timeline), visible=True, label=TIMELINE_LABEL + suffix),
        gr.update(value=write_csv(result.timeline), visible=True),
        status,
        result.voice,
    )


def on_clear(labels: tuple[str, ...]) -> tuple:
    """Empty the results before a new analysis, so an error never sits beside an old verdict."""
    import gradio as gr

    return (
        render_waiting("Record or upload speech; the result appears here."),
        gr.update(value=empty_probability_chart(labels), label=BARS_LABEL),
        gr.update(value=None, visible=False, label=TIMELINE_LABEL),
        gr.update(value=None, visible=False),
    )


def on_live_chunk(
    clf: EmotionClassifier, chunk: AudioInput, session: LiveSession | None, visitor: VisitorVoice | None = None
) -> tuple:
    """One live chunk -> (session, verdict HTML, timeline chart, voice status); the page is only
    redrawn when a new point is added, the status when an utterance taught the voice. Failures
    become a status line, so one odd chunk never ends the stream."""
    import gradio as gr

    heard = len(session.utterances) if session is not None else 0
    try:
        session, updated = live_step(clf, session, chunk, visitor=visitor)
    except SERError as e:
        return session, render_waiting(str(e)), gr.skip(), gr.skip()
    except Exception:
        log.exception("Unexpected failure in a live chunk")
        return session, render_waiting(FRIENDLY_FAILURE), gr.skip(), gr.skip()
    learned = len(session.utterances) > heard
    status = render_voice(visitor.voice or clf.voice()) if learned and visitor is not None else gr.skip()
    if not updated and not learned:
        return session, gr.skip(), gr.skip(), gr.skip()
    verdict = render_live(session)
    if not updated:  # an utterance ended between two timeline points: show its verdict now
        return session, verdict, gr.skip(), status
    return session, verdict, timeline_chart(session.times, session.probabilities, clf.labels), status


def render_live(session: LiveSession) -> str:
    """The live tab's card: the last seconds' verdict (or the status), then the utterances so far."""
    if session.current is None:
        verdict = render_waiting(session.status)
    else:
        note = session.voice.describe() if session.voice is not None else ""
        verdict = render_verdict(session.current, detail=session.status, voice_note=note, adapted=note != "")
    return verdict + render_live_utterances(session.utterances, session.adapted)


def render_live_utterances(utterances: list[Window], adapted_flags: list[bool] | None = None) -> str:
    """The last :data:`LIVE_UTTERANCES_SHOWN` utterances, newest first, each with its verdict
    ("strongly angry 81%"), its seconds, and whether it was judged relative to the visitor's
    voice (``adapted_flags``, one per utterance); nothing before the first one ends."""
    if not utterances:
        return ""
    flags = adapted_flags or []
    items = []
    shown = range(len(utterances) - 1, max(-1, len(utterances) - 1 - LIVE_UTTERANCES_SHOWN), -1)
    for i in shown:
        u = utterances[i]
        p = u.prediction
        when = f'<span class="ser-when">{u.start:.1f}–{u.end:.1f} s</span>'
        if p is None:
            items.append(f"<li>(too short to judge) {when}</li>")
            continue
        colour = COLOURS.get(p.emotion, "#94a3b8")
        title = f"{EMOJIS.get(p.emotion, '')} {describe(p.emotion, p.intensity)}"
        mine = i < len(flags) and flags[i]
        items.append(
            f'<li data-emotion="{p.emotion}" data-adapted="{str(mine).lower()}">'
            f'<span class="ser-pill" style="--ser-colour:{colour}">{title}</span> {p.confidence:.0%} {when}'
            f"{UTTERANCE_ADAPTED if mine else ''}</li>"
        )
    return (
        f'<div class="ser-utterances" data-count="{len(utterances)}"><div class="ser-note">'
        f"Each utterance, judged as you pause ({len(utterances)} so far, newest first):</div>"
        f"<ol>{''.join(items)}</ol></div>"
    )


def on_live_stop(clf: EmotionClassifier, session: LiveSession | None, visitor: VisitorVoice | None = None) -> tuple:
    """The recording stopped: judge the utterance in progress -> (session, live card, voice status)."""
    import gradio as gr

    if session is None or session.stopped:
        return session, gr.skip(), gr.skip()
    session.stopped = True
    if session.listener is None:
        return session, gr.skip(), gr.skip()
    try:
        session.utterances.extend(session.listener.finish())
    except Exception:
        log.exception("Unexpected failure judging the last utterance")
        return session, gr.skip(), gr.skip()
    status = gr.skip() if visitor is None else render_voice(visitor.voice or clf.voice())
    return session, render_live(session), status


def on_live_start() -> tuple:
    """A new recording starts a new live session."""
    return LiveSession(), render_waiting("Listening… the first verdict comes after about a second of speech."), None


def api_predict(clf: EmotionClassifier, source: AudioInput, reference: AudioInput = None) -> dict:
    """The ``/predict`` endpoint: ``{"emotion", "confidence", "probabilities", "intensity", "adapted"}`` for a
    file, relative to the speaker's voice in ``reference`` when one is given (used for this call only)."""
    voice = calibrate_voice(clf, reference) if reference is not None else None
    return result_row(analyse(clf, source, voice).prediction, voice)


def calibrate_voice(clf: EmotionClassifier, source: AudioInput) -> Voice:
    """The voice in a recording of the visitor's everyday speech (a file or a Gradio pair),
    held to the REST API's reference limits: a file over them is refused from its header."""
    if isinstance(source, (str, os.PathLike)):
        budget = Budget(LIMITS, references=1, clip_seconds=clf.preprocessing.clip_seconds)
        budget.add_reference(source)
        (y,) = budget.start().load_references([source])
    else:
        y = load_signal(source)
        if y.size > LIMITS.max_reference_seconds * audio.SAMPLE_RATE:
            raise LIMITS.references_too_long(y.size / audio.SAMPLE_RATE)
    return clf.calibrate(y, audio.SAMPLE_RATE)


# ---------------------------------------------------------------- the visitor's voice


class VisitorVoice:
    """What the demo has learned of one visitor's voice: a :class:`Voice` that every recording
    they have analysed and their calibration reading add to, until they forget it.

    The page keeps one per browser session in a ``gr.State``, which gives each session its own
    deep copy of the page's empty one (:meth:`__deepcopy__`): in memory only, never on disk, never
    shared. Handlers change it in place under a lock, so a recording, the calibration and the
    reset of one visitor, running at once, never lose one another's work.
    """

    def __init__(self, voice: Voice | None = None) -> None:
        self.voice = voice  # None until something is learned
        self.generation = 0  # counts the resets: work begun before one is not learned
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> VisitorVoice:
        return VisitorVoice(self.voice)  # a Voice never changes: sharing it is copying it

    def current(self) -> Voice | None:
        """The voice verdicts are judged relative to now: ``None`` until it knows enough (:attr:`Voice.source`)."""
        voice = self.voice
        return voice if adapted(voice) is not None else None

    def learn(self, clf: EmotionClassifier, heard: Heard, generation: int | None = None) -> Voice | None:
        """Add a recording :meth:`EmotionClassifier.hear` made into features to the voice; returns
        the voice to judge that recording relative to.

        A recording is judged relative to the voice only when the voice knew enough *before* it,
        and then relative to the voice including it: so a recording is never judged against a
        voice learned mostly from itself (one long angry recording would teach the voice that
        anger is how this speaker sounds), the recording that completes the voice keeps the
        model's own verdict (its card says the next ones are adapted), and once adapted, the page
        gives each recording ``predict(x, voice=adapt(every recording so far))``, as
        ``--same-speaker`` judges a folder. ``generation``, read before the recording was heard:
        when the visitor forgot their voice since, nothing is learned.
        """
        if clf.adapted is None:
            return None
        with self._lock:
            if generation is not None and generation != self.generation:
                return self.current()
            before = self.voice if self.voice is not None else clf.voice()
            self.voice = clf.adapt([heard], voice=before)
            return self.voice if before.source is not None else None

    def calibrate(self, clf: EmotionClassifier, reading: np.ndarray) -> Voice:
        """Add a reading of the visitor's everyday voice (16 kHz mono) as reference speech."""
        with self._lock:  # held while the reading's features are computed: only this visitor waits
            self.voice = clf.calibrate(reading, audio.SAMPLE_RATE, voice=self.voice)
            return self.voice

    def forget(self) -> None:
        """Forget everything learned, reference and session alike."""
        with self._lock:
            self.voice = None
            self.generation += 1


def read_calibration(source: AudioInput) -> tuple[np.ndarray, bool]:
    """A calibration reading (a file or a Gradio pair) as a mono 16 kHz signal of at most its first
    :data:`MAX_CALIBRATION_SECONDS`, and whether it was longer; the rest of a file is never decoded."""
    limit = int(MAX_CALIBRATION_SECONDS * audio.SAMPLE_RATE)
    if isinstance(source, (str, os.PathLike)):
        blocks, longer = audio.take(audio.stream(source), limit)
        y = np.concatenate(blocks)
    else:
        y = load_signal(source)
        longer = y.size > limit
    return y[:limit], longer


def on_calibrate(clf: EmotionClassifier, source: AudioInput, visitor: VisitorVoice) -> str:
    """A calibration reading -> the voice status, the reading added to the visitor's voice (a
    reading longer than a minute: its first minute, and a note saying so)."""
    import gradio as gr

    reading, longer = read_calibration(source)
    voice = visitor.calibrate(clf, reading)
    if longer:
        gr.Info(CALIBRATION_CUT)
    return render_voice(voice)


def on_forget(clf: EmotionClassifier, visitor: VisitorVoice) -> str:
    """The reset: the visitor's voice forgotten -> the voice status of an empty voice."""
    visitor.forget()
    return render_voice(clf.voice())


def render_voice(voice: Voice) -> str:
    """The status line of the visitor's voice: what it has learned and whether verdicts use it
    (:meth:`Voice.describe`; ``data-adapted``, ``data-source``, ``data-recordings``,
    ``data-seconds`` say it to scripts), and that it stays in this tab."""
    on = adapted(voice) is not None
    text = f"✅ {voice.describe()} {ADAPTED_NOTE}" if on else f"👂 {voice.describe()}"
    return (
        f'<div class="ser-voice" data-adapted="{str(on).lower()}" data-source="{voice.source or ""}" '
        f'data-recordings="{voice.recordings}" data-seconds="{voice.seconds:.1f}">{text}'
        f'<div class="ser-privacy">{VOICE_PRIVACY}</div></div>'
    )


# ---------------------------------------------------------------- page


def _intro_markdown(labels: tuple[str, ...]) -> str:
    emotions = " · ".join(_label(k) for k in labels)
    return (
        "## 🎙️ Which emotion does your voice carry?\n"
        "Record a sentence or upload a file: a small model listens to *how* you speak (pitch, energy, "
        f"timbre, not the words) and picks one of {_count(labels)} emotions: {emotions}."
    )


def _count(labels: tuple[str, ...]) -> str:
    """The number of labels in words, as a sentence reads it."""
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[len(labels)] if len(labels) < len(words) else str(len(labels))


def _help_markdown() -> str:
    lines = "\n".join(f"- {_label(emotion)}: “{sentence}” ({how})" for emotion, sentence, how in SUGGESTED_SENTENCES)
    return (
        "The model was trained on actors saying two sentences in different moods. Say one of them "
        "the way the mood suggests, for 2 to 4 seconds, close to the microphone:\n\n"
        f"{lines}\n\n"
        "It is a small research model trained on acted English speech: treat the result as a "
        "guess about the *sound* of your voice, not a judgement of how you feel."
    )


def _limits_markdown(clip_seconds: float) -> str:
    return (
        f'<div class="ser-limits">Files: {audio.FORMATS}; up to {MAX_UPLOAD_BYTES / 2**20:g} MB and '
        f"{MAX_SECONDS / 60:g} minutes. Recordings longer than {clip_seconds:g} s also get an "
        "emotion timeline and a verdict per utterance. Uploaded audio and timelines are deleted "
        f"{retention()}; nothing else is kept.</div>"
    )


def retention() -> str:
    """When the demo deletes what it was sent, as :data:`CACHE_SWEEP` makes it happen."""
    every, age = CACHE_SWEEP
    return f"{age // 60} to {(age + every) // 60} minutes after they arrive, and when the demo stops"


def cache_folder(port: int) -> Path:
    """The demo's own Gradio cache (uploads, timeline CSVs): one folder per port, so a restart
    on that port can sweep what a killed run left behind."""
    return Path(tempfile.gettempdir()) / f"{CACHE_PREFIX}{port}"


def sweep_cache(folder: Path) -> int:
    """Delete everything in ``folder`` (a previous run's uploads and CSVs); returns the files removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _voice_panel(clf: EmotionClassifier) -> tuple[Any, Any, Any]:
    """The visitor's voice, inside the page being built: its status line with the reset, then the
    optional calibration step. Returns ``(status, reset button, calibration input)``; all hidden
    for a model without an adapted variant."""
    import gradio as gr

    shown = clf.adapted is not None
    with gr.Row(equal_height=False, visible=shown, elem_id="voice"):
        status = gr.HTML(render_voice(clf.voice()), elem_id="voice-status")
        reset = gr.Button("Forget my voice", elem_id="voice-forget", size="sm", scale=0, min_width=150)
    with gr.Accordion("Calibrate to my voice (optional, quicker)", open=False, elem_id="calibrate", visible=shown):
        gr.Markdown(
            "The demo learns how you usually sound from every recording you make. To have verdicts relative "
            "to your voice at once, read this in your everyday voice, calmly, close to the microphone "
            f"(about 20 seconds; up to {MAX_CALIBRATION_SECONDS:g} s of reading is used): {CALIBRATION_TEXT} "
            "Calibrating again adds to what the demo knows; “Forget my voice” starts over."
        )
        calibrate_in = gr.Audio(
            sources=["microphone", "upload"],
            type="filepath",
            label="Your everyday voice",
            elem_id="calibrate-in",
        )
    return status, reset, calibrate_in


def build_app(clf: EmotionClassifier) -> Any:
    """The Gradio Blocks page for ``clf`` (load the model once, pass it here)."""
    import gradio as gr

    analyse_upload = friendly(functools.partial(on_audio, clf))
    analyse_recording = friendly(functools.partial(on_audio, clf), source=FROM_MICROPHONE)
    live_chunk = functools.partial(on_live_chunk, clf)
    live_stop = functools.partial(on_live_stop, clf)
    clear = functools.partial(on_clear, clf.labels)
    predict_api = friendly(functools.partial(api_predict, clf))
    calibrate = friendly(functools.partial(on_calibrate, clf))  # its own sentence without speech, for any source
    forget = functools.partial(on_forget, clf)
    utterances = friendly(functools.partial(on_segments, clf))
    named = (
        (analyse_upload, "analyse"),
        (analyse_recording, "analyse_recording"),
        (live_chunk, "live_chunk"),
        (predict_api, "predict"),
        (calibrate, "calibrate"),
    )
    for fn, name in named:
        fn.__name__ = name  # type: ignore[attr-defined]

    with gr.Blocks(title="Speech emotion recognition", delete_cache=CACHE_SWEEP, analytics_enabled=False) as demo:
        gr.Markdown(_intro_markdown(clf.labels), elem_id="intro")
        with gr.Accordion("What to say (first visit? start here)", open=False, elem_id="help"):
            gr.Markdown(_help_markdown())
        voice_state = gr.State(VisitorVoice())  # the visitor's voice: each session its own copy, in memory only
        judged_state = gr.State(None)  # the voice the last recording was judged relative to, for its utterances
        voice_status, reset, calibrate_in = _voice_panel(clf)
        with gr.Tabs():
            with gr.Tab("Record or upload", id="analyse"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
                        audio_in = gr.Audio(
                            sources=["microphone", "upload"],
                            type="filepath",
                            label="Your speech",
                            elem_id="audio-in",
                        )
                        gr.HTML(_limits_markdown(clf.preprocessing.clip_seconds))
                    with gr.Column(scale=1, min_width=280):
                        verdict = gr.HTML(
                            render_waiting("Record or upload speech; the result appears here."), elem_id="verdict"
                        )
                        bars = gr.Plot(
                            empty_probability_chart(clf.labels),
                            label=BARS_LABEL,
                            elem_id="bars",
                            show_label=True,
                        )
                timeline_plot = gr.Plot(label=TIMELINE_LABEL, visible=False, elem_id="timeline")
                csv_file = gr.File(label="Timeline as CSV", visible=False, elem_id="timeline-csv", interactive=False)
                bands = gr.Plot(label=UTTERANCES_LABEL, visible=False, elem_id="utterances")
                table = gr.Dataframe(
                    headers=UTTERANCE_COLUMNS,
                    label=UTTERANCE_TABLE_LABEL,
                    visible=False,
                    interactive=False,
                    elem_id="utterance-table",
                )
            with gr.Tab("Live", id="live"):
                gr.Markdown(
                    f"Speak and watch the emotion follow you, updated about every {LIVE_STREAM_EVERY:g} s from the "
                    f"last {clf.preprocessing.clip_seconds:g} s of sound (up to {LIVE_TIME_LIMIT // 60} minutes a session). "
                    "Each sentence also gets its own verdict as soon as you pause."
                )
                live_state = gr.State(None)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
                        live_in = gr.Audio(
                            sources=["microphone"],
                            type="filepath",
                            streaming=True,
                            label="Microphone",
                            elem_id="live-in",
                        )
                    with gr.Column(scale=1, min_width=280):
                        live_verdict = gr.HTML(
                            render_waiting("Press record and start talking."), elem_id="live-verdict"
                        )
                live_plot = gr.Plot(label="Live emotion timeline", elem_id="live-timeline")

        # hidden, API-only: Client(url).predict(handle_file("x.wav"), api_name="/predict")
        api_in = gr.Audio(type="filepath", visible=False)
        api_reference = gr.Audio(type="filepath", visible=False)
        api_out = gr.JSON(visible=False)
        api_trigger = gr.Button(visible=False)

        outputs = [verdict, bars, timeline_plot, csv_file]
        for event, analyse_audio in ((audio_in.upload, analyse_upload), (audio_in.stop_recording, analyse_recording)):
            event(clear, None, outputs, queue=False, show_progress="hidden", api_visibility="private").then(
                analyse_audio,
                [audio_in, voice_state],
                [*outputs, voice_status, judged_state],
                concurrency_limit=ANALYSIS_CONCURRENCY,
                concurrency_id="analysis",
                api_visibility="private",
                scroll_to_output=True,
            ).success(
                utterances,
                [audio_in, judged_state],
                [bands, table],
                concurrency_limit=ANALYSIS_CONCURRENCY,
                concurrency_id="analysis",
                show_progress="hidden",
                api_visibility="private",
            )
            event(lambda: (gr.update(visible=False),) * 2, None, [bands, table], queue=False, api_visibility="private")
        audio_in.clear(clear, None, outputs, queue=False, api_visibility="private")
        audio_in.clear(
            lambda: (gr.update(visible=False),) * 2, None, [bands, table], queue=False, api_visibility="private"
        )

        live_in.start_recording(
            on_live_start, None, [live_state, live_verdict, live_plot], queue=False, api_visibility="private"
        )
        live_in.stop_recording(
            live_stop,
            [live_state, voice_state],
            [live_state, live_verdict, voice_status],
            queue=False,
            api_visibility="private",
        )
        live_in.stream(
            live_chunk,
            [live_in, live_state, voice_state],
            [live_state, live_verdict, live_plot, voice_status],
            stream_every=LIVE_STREAM_EVERY,
            time_limit=LIVE_TIME_LIMIT,
            concurrency_limit=LIVE_CONCURRENCY,
            show_progress="hidden",
            api_visibility="private",
        )

        for event in (calibrate_in.upload, calibrate_in.stop_recording):
            event(
                calibrate,
                [calibrate_in, voice_state],
                voice_status,
                concurrency_limit=ANALYSIS_CONCURRENCY,
                concurrency_id="analysis",
                api_visibility="private",
            )
        reset.click(forget, voice_state, voice_status, queue=False, api_visibility="private")

        api_trigger.click(
            predict_api,
            [api_in, api_reference],
            api_out,
            api_name="predict",
            concurrency_limit=ANALYSIS_CONCURRENCY,
            concurrency_id="analysis",
        )
    demo.queue(default_concurrency_limit=ANALYSIS_CONCURRENCY)
    return demo


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: look, upload limit, and no extra served paths."""
    import gradio as gr

    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        "css": CSS,
        "max_file_size": MAX_UPLOAD_BYTES,
        "allowed_paths": [],
        "footer_links": ["api"],
    }
