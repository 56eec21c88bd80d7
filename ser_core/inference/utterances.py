"""Utterances: a recording split on its pauses, one stretch of speech each.

A voice-activity detector scores fixed frames of the 16 kHz signal (the probability that
each holds speech); :func:`utterances` turns those scores into utterances with the rules of
:class:`Segmentation` (shortest speech, shortest pause, longest utterance, split at its
quietest point). One implementation, :class:`Segmenter`, is fed block by block (as
:func:`ser_core.audio.stream` decodes, or as a live stream arrives) and hands back each utterance
as soon as it ends; :func:`utterances` runs it over a recording. It keeps at most one utterance
of audio, so hours of recording use bounded memory.

Three detectors share the :class:`Detector` protocol: ``silero`` (Silero VAD, its ONNX model
shipped in ``ser_core/data`` under the MIT licence, run on onnxruntime), ``webrtc`` (the
WebRTC detector, package ``webrtcvad-wheels``) and ``energy`` (frame level against a tracked
noise floor). ``benchmarks/bench_utterances.py`` compares them; the default is the one that
measured best.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import audio
from ..errors import ArtifactError, ParameterError

__all__ = [
    "DETECTORS",
    "DEFAULT_DETECTOR",
    "Segmentation",
    "SEGMENTATION",
    "Segmenter",
    "Detector",
    "detector",
    "utterances",
    "spans",
]

MIN_PAUSE_SECONDS = 0.25  # a shorter silence is a breath inside an utterance, not a boundary
MAX_UTTERANCE_SECONDS = 10.0  # a longer utterance is split at its quietest point
PAD_SECONDS = 0.05  # kept on each side of detected speech, for soft onsets and endings
SPEECH_THRESHOLD = 0.35  # speech probability that starts speech
HYSTERESIS = 0.15  # speech goes on while the probability stays above the threshold minus this
SPLIT_SMOOTH_SECONDS = 0.1  # frame energies are averaged over this before looking for the quietest point
POWER_FLOOR = 1e-10  # (-100 dBFS) added to frame power before taking logarithms

SILERO_MODEL = Path(__file__).resolve().parent.parent / "data" / "silero_vad_16k_sequence.onnx"
SILERO_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"
SILERO_FRAME = 512  # samples per decision at 16 kHz (32 ms)
SILERO_CONTEXT = 64  # samples of the previous frame the model sees before each frame
SILERO_STATE = (1, 1, 128)  # LSTM hidden and cell state

WEBRTC_FRAME = 480  # samples per decision (30 ms; WebRTC takes 10, 20 or 30 ms)
WEBRTC_MODE = 2  # aggressiveness 0-3: how readily noise is called non-speech

ENERGY_FRAME = 480  # samples per decision (30 ms)
ENERGY_MARGIN_DB = 6.0  # speech is this much above the noise floor
ENERGY_FLOOR_PERCENTILE = 10.0  # the noise floor: this percentile of recent frame levels
ENERGY_HISTORY_SECONDS = 30.0  # recent frames the noise floor is estimated from
ENERGY_MIN_DB = -60.0  # frames quieter than this (dBFS) are never speech

DETECTORS = ("silero", "webrtc", "energy")
DEFAULT_DETECTOR = "silero"


@dataclass(frozen=True)
class Segmentation:
    """The rules that turn voice activity into utterances (seconds)."""

    detector: str = DEFAULT_DETECTOR
    min_speech_seconds: float = audio.MIN_SPEECH_SECONDS  # shorter bursts are dropped: too short to judge
    min_pause_seconds: float = MIN_PAUSE_SECONDS
    max_seconds: float = MAX_UTTERANCE_SECONDS
    pad_seconds: float = PAD_SECONDS
    threshold: float = SPEECH_THRESHOLD

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ParameterError(f"Unknown voice-activity detector {self.detector!r}; choose one of {DETECTORS}.")
        if not (0 < self.min_speech_seconds and 2 * self.min_speech_seconds < self.max_seconds):
            raise ParameterError("min_speech_seconds must be positive and less than half of max_seconds.")
        if not 0 <= 2 * self.pad_seconds < self.min_pause_seconds:
            raise ParameterError("pad_seconds must be at least 0 and less than half of min_pause_seconds.")
        if not HYSTERESIS < self.threshold < 1:
            raise ParameterError(f"threshold must be between {HYSTERESIS} and 1.")


SEGMENTATION = Segmentation()


# ---------------------------------------------------------------- detectors


class Detector(Protocol):
    """Speech probability of consecutive frames of one recording; keeps state between calls."""

    frame: int  # samples per frame

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(k, frame)`` float32 samples -> ``(k,)`` probabilities in [0, 1]."""
        ...


_silero_lock = threading.Lock()
_silero_session = None


def _silero():
    """The shared onnxruntime session of the shipped Silero model, its checksum verified once."""
    global _silero_session
    with _silero_lock:
        if _silero_session is None:
            try:
                import onnxruntime as ort
            except ImportError:
                raise ParameterError(
                    "The silero detector needs onnxruntime; pip install onnxruntime, or choose detector 'energy'."
                ) from None
            content = SILERO_MODEL.read_bytes()
            if hashlib.sha256(content).hexdigest() != SILERO_SHA256:
                raise ArtifactError(f"{SILERO_MODEL} does not match its checksum; reinstall ser_core.")
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            _silero_session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        return _silero_session


class SileroDetector:
    """Silero VAD (v5, the 16 kHz sequence export): one model call for a whole block of frames."""

    frame = SILERO_FRAME

    def __init__(self) -> None:
        self.session = _silero()
        self.hidden = np.zeros(SILERO_STATE, np.float32)
        self.cell = np.zeros(SILERO_STATE, np.float32)
        self.context = np.zeros(SILERO_CONTEXT, np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if not len(frames):
            return np.zeros(0, np.float32)
        contexts = np.concatenate([self.context[None], frames[:-1, -SILERO_CONTEXT:]])
        self.context = frames[-1, -SILERO_CONTEXT:].copy()
        inputs = np.ascontiguousarray(np.concatenate([contexts, frames], axis=1), np.float32)
        probs, self.hidden, self.cell = self.session.run(
            ["speech_probs", "hn", "cn"], {"input": inputs, "h": self.hidden, "c": self.cell}
        )
        return np.asarray(probs, np.float32).reshape(-1)


class WebrtcDetector:
    """The WebRTC voice-activity detector: a yes or no for each 30 ms frame."""

    frame = WEBRTC_FRAME

    def __init__(self, mode: int = WEBRTC_MODE) -> None:
        try:
            import webrtcvad
        except ImportError:
            raise ParameterError(
                "The webrtc detector needs webrtcvad; pip install webrtcvad-wheels, or choose detector 'silero'."
            ) from None
        self.vad = webrtcvad.Vad(mode)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
        return np.array([self.vad.is_speech(row.tobytes(), audio.SAMPLE_RATE) for row in pcm], np.float32)


class EnergyDetector:
    """Frame level against a noise floor (a low percentile of the last seconds' frame levels)."""

    frame = ENERGY_FRAME

    def __init__(self) -> None:
        self.history: deque[float] = deque(maxlen=int(ENERGY_HISTORY_SECONDS * audio.SAMPLE_RATE / self.frame))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        level = frame_db(frames)
        self.history.extend(level.tolist())
        floor = np.percentile(np.fromiter(self.history, float), ENERGY_FLOOR_PERCENTILE)
        return ((level > floor + ENERGY_MARGIN_DB) & (level > ENERGY_MIN_DB)).astype(np.float32)


def detector(name: str = DEFAULT_DETECTOR) -> Detector:
    """A fresh detector (its own state) for one recording."""
    if name == "silero":
        return SileroDetector()
    if name == "webrtc":
        return WebrtcDetector()
    if name == "energy":
        return EnergyDetector()
    raise ParameterError(f"Unknown voice-activity detector {name!r}; choose one of {DETECTORS}.")


def frame_db(frames: np.ndarray) -> np.ndarray:
    """Level of each frame in dBFS. ``(k, frame) -> (k,)``."""
    return 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + POWER_FLOOR)


# ---------------------------------------------------------------- utterances


def _quietest(levels: np.ndarray, lo: int, hi: int, smooth: int) -> int:
    """Index in ``[lo, hi)`` of the quietest stretch of ``levels`` (dB, smoothed over ``smooth`` frames)."""
    power = np.convolve(10.0 ** (levels / 10.0), np.ones(smooth) / smooth, mode="same")
    return lo + int(np.argmin(power[lo:hi]))


class _Tail:
    """The end of a stream of samples: appended to at the end, dropped from the front, read by
    absolute sample index. Appending copies only the new samples (the buffer grows by doubling),
    so a long utterance arriving in small blocks costs time in proportion to its length."""

    def __init__(self) -> None:
        self.buffer = np.zeros(0, np.float32)
        self.size = 0  # samples held, from buffer[0] on
        self.offset = 0  # absolute index of buffer[0]

    def append(self, y: np.ndarray) -> None:
        if self.size + y.size > self.buffer.size:
            grown = np.zeros(max(2 * self.buffer.size, self.size + y.size), np.float32)
            grown[: self.size] = self.buffer[: self.size]
            self.buffer = grown
        self.buffer[self.size : self.size + y.size] = y
        self.size += y.size

    def drop_before(self, index: int) -> None:
        """Forget the samples before absolute ``index``."""
        drop = max(0, min(index - self.offset, self.size))
        if drop:
            self.buffer[: self.size - drop] = self.buffer[drop : self.size]
            self.size -= drop
            self.offset += drop

    def copy(self, lo: int, hi: int) -> np.ndarray:
        """The samples from absolute ``lo`` to ``hi`` (both held), as a new array."""
        return self.buffer[lo - self.offset : hi - self.offset].copy()


class Segmenter:
    """Push-based utterance finding: :meth:`feed` blocks of a 16 kHz mono stream as they come,
    get back each utterance as soon as it ends; :meth:`finish` gives the one still open.

    The one implementation of the rules of :class:`Segmentation`: :func:`utterances` is this
    class run over a recording, and the live stream (``GET /v1/stream``) and the demo's live tab
    use it as audio arrives, so all of them find the same utterances. An utterance ends once
    ``min_pause_seconds`` of its pause have been fed. Memory: about one ``max_seconds`` of audio,
    whatever the length of the stream.
    """

    def __init__(self, settings: Segmentation = SEGMENTATION) -> None:
        self.settings = settings
        self.vad = detector(settings.detector)
        frame, sr = self.vad.frame, audio.SAMPLE_RATE
        self.frame = frame
        self._min_speech = max(1, round(settings.min_speech_seconds * sr / frame))
        self._min_pause = max(1, round(settings.min_pause_seconds * sr / frame))
        self._longest = max(2 * self._min_speech + 1, int(settings.max_seconds * sr / frame))
        self._smooth = max(1, round(SPLIT_SMOOTH_SECONDS * sr / frame))
        self._pad = int(round(settings.pad_seconds * sr))
        self._rest = np.zeros(0, np.float32)  # samples short of a whole frame, waiting for the next block
        self._kept = _Tail()  # audio an utterance still to come may use
        self._levels: list[float] = []  # frame levels from frame `start` on
        self._start: int | None = None  # first frame of the open utterance
        self._split = False  # the open utterance began at a split, so gets no padding before it
        self._last = -1  # last frame with speech
        self._i = -1  # last frame judged
        self._total = 0  # samples judged (the last frame of a finished stream is padded, not counted)
        self._finished = False

    @property
    def samples(self) -> int:
        """Samples fed so far."""
        return self._total + self._rest.size

    @property
    def speaking(self) -> bool:
        """Whether an utterance is open: speech was heard and no pause long enough has ended it yet."""
        return self._start is not None

    def feed(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add the next samples ``(m,)``; the utterances that ended in them, as ``(start sample, samples)``."""
        if self._finished:
            raise ParameterError("This stream is finished; start a new one to go on.")
        y = np.concatenate([self._rest, np.asarray(block, np.float32)])
        whole = y.size // self.frame * self.frame
        self._rest = y[whole:].copy()
        if not whole:
            return []
        return self._frames(y[:whole].reshape(-1, self.frame), whole)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """End the stream: the utterances that end with it (the partial last frame, zero-padded, is
        judged; then the utterance still open is cut, if it holds enough speech). Idempotent."""
        if self._finished:
            return []
        self._finished = True
        found: list[tuple[int, np.ndarray]] = []
        if self._rest.size:
            padded = np.concatenate([self._rest, np.zeros(self.frame - self._rest.size, np.float32)])
            found = self._frames(padded[None], self._rest.size)
            self._rest = np.zeros(0, np.float32)
        if self._start is not None and self._last + 1 - self._start >= self._min_speech:
            found.append(self._cut(self._start, self._last + 1, 0 if self._split else self._pad, self._pad))
        self._start = None
        return found

    def _cut(self, a: int, b: int, pad_before: int, pad_after: int) -> tuple[int, np.ndarray]:
        """Frames ``[a, b)`` with padding, as ``(start sample, samples)``."""
        lo = max(0, a * self.frame - pad_before, self._kept.offset)
        hi = min(self._total, b * self.frame + pad_after)
        return lo, self._kept.copy(lo, hi)

    def _frames(self, frames: np.ndarray, real: int) -> list[tuple[int, np.ndarray]]:
        """Judge whole frames ``(k, frame)`` holding ``real`` samples of the stream (the rest padding)."""
        probs = self.vad(frames)
        self._total += real
        self._kept.append(frames.reshape(-1)[:real])
        found = []
        threshold, frame = self.settings.threshold, self.frame
        for level, p in zip(frame_db(frames), probs, strict=True):
            self._i += 1
            i = self._i
            speaking = self._start is not None and self._last == i - 1
            if p >= threshold - (HYSTERESIS if speaking else 0.0):
                if self._start is None:
                    self._start, self._split, self._levels = i, False, []
                self._last = i
            if self._start is None:
                continue
            self._levels.append(float(level))
            start = self._start
            if i - self._last >= self._min_pause:  # the pause is long enough: the utterance is over
                if self._last + 1 - start >= self._min_speech:
                    found.append(self._cut(start, self._last + 1, 0 if self._split else self._pad, self._pad))
                self._start = None
            elif i + 1 - start >= self._longest:  # too long: split at the quietest point
                levels = np.array(self._levels)
                q = _quietest(levels, self._min_speech, len(levels) - self._min_speech, self._smooth)
                found.append(self._cut(start, start + q, 0 if self._split else self._pad, 0))
                self._start, self._split, self._levels = start + q, True, self._levels[q:]
        # keep only what an utterance still to come can use
        if self._start is not None:
            keep_from = self._start * frame - (0 if self._split else self._pad)
        else:
            keep_from = (self._i + 1) * frame - self._pad
        self._kept.drop_before(min(keep_from, self._total))
        return found


def utterances(
    blocks: Iterable[np.ndarray], *, settings: Segmentation = SEGMENTATION
) -> Iterator[tuple[int, np.ndarray]]:
    """The utterances of a 16 kHz mono stream of blocks, as ``(start sample, samples)``.

    Speech of at least ``min_speech_seconds`` becomes an utterance; pauses shorter than
    ``min_pause_seconds`` stay inside it; one longer than ``max_seconds`` is split at its
    quietest point (no part longer); each keeps ``pad_seconds`` of audio either side of its
    speech (not at a split). A :class:`Segmenter` fed block by block, so the memory is about one
    ``max_seconds`` of audio, whatever the length.
    """
    segmenter = Segmenter(settings)
    for block in blocks:
        yield from segmenter.feed(block)
    yield from segmenter.finish()


def spans(
    blocks: Iterable[np.ndarray],
    *,
    settings: Segmentation = SEGMENTATION,
    config: audio.Preprocessing = audio.PREPROCESSING,
) -> Iterator[audio.Span]:
    """Each utterance of a stream as a :class:`~ser_core.audio.Span` with the clips that judge it."""
    for start, samples in utterances(blocks, settings=settings):
        yield audio.span(start, samples, config=config)
