"""The public entry point: :class:`EmotionClassifier` turns audio into emotions.

One path for files and arrays: a file is decoded to mono 16 kHz samples, an array is
converted to the same, and both go through :meth:`EmotionClassifier._classify_signal`.
A clip whose speech fits one 3.5 s window is judged as one window, exactly as in
training; longer speech is judged window by window and the verdict is the mean.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .artifacts import Bundle, load_bundle
from .errors import ArtifactError, AudioError, ParameterError
from .features import load_extractor

__all__ = ["EmotionClassifier", "Prediction", "Timeline", "Window", "EMOTIONS"]

EMOTIONS = ("neutral", "calm", "happy", "angry", "fearful", "disgust", "surprised")
DEFAULT_HOP_SECONDS = 1.0  # timeline step
IN_MEMORY_SECONDS = 60.0  # longer files are analysed as a stream, in bounded memory
BATCH_WINDOWS = 8  # windows per feature/model batch: small, so even a short recording keeps every thread busy
INFLIGHT_PER_THREAD = 4  # batches queued per thread: all stay busy, memory stays bounded


@dataclass(frozen=True)
class Prediction:
    """A verdict: the winning emotion, its probability, and all class probabilities."""

    emotion: str
    confidence: float
    probabilities: dict[str, float]

    @classmethod
    def from_probabilities(cls, labels: tuple[str, ...], probs: np.ndarray) -> Prediction:
        probs = np.asarray(probs, dtype=np.float64)
        probs = probs / probs.sum()
        best = int(np.argmax(probs))
        return cls(
            emotion=labels[best],
            confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(labels, probs, strict=False)},
        )

    def to_dict(self) -> dict:
        return {"emotion": self.emotion, "confidence": self.confidence, "probabilities": dict(self.probabilities)}


@dataclass(frozen=True)
class Window:
    """One timeline window: its span in seconds and a verdict, or ``None`` without speech."""

    start: float
    end: float
    prediction: Prediction | None

    def to_dict(self) -> dict:
        out: dict = {"start": round(self.start, 3), "end": round(self.end, 3), "speech": self.prediction is not None}
        if self.prediction is not None:
            out.update(self.prediction.to_dict())
        return out


@dataclass(frozen=True)
class Timeline:
    """Emotion over time: every window, and the mean verdict over windows with speech."""

    labels: tuple[str, ...]
    window_seconds: float
    hop_seconds: float
    duration: float
    windows: list[Window] = field(default_factory=list)

    @property
    def voiced(self) -> list[Window]:
        return [w for w in self.windows if w.prediction is not None]

    @property
    def summary(self) -> Prediction:
        """Mean probabilities over windows with speech; raises :class:`AudioError` when none has any."""
        voiced = self.voiced
        if not voiced:
            raise AudioError("No speech was found in the recording; check the microphone and speak closer to it.")
        probs = np.mean([[w.prediction.probabilities[k] for k in self.labels] for w in voiced], axis=0)
        return Prediction.from_probabilities(self.labels, probs)

    def shares(self) -> dict[str, float]:
        """Fraction of voiced windows won by each emotion."""
        voiced = self.voiced
        counts = {label: 0 for label in self.labels}
        for w in voiced:
            counts[w.prediction.emotion] += 1
        return {k: (v / len(voiced) if voiced else 0.0) for k, v in counts.items()}

    def to_dict(self) -> dict:
        try:
            summary = self.summary.to_dict()
        except AudioError:
            summary = None
        return {
            "duration": round(self.duration, 3),
            "window": self.window_seconds,
            "hop": self.hop_seconds,
            "summary": summary,
            "shares": self.shares(),
            "windows": [w.to_dict() for w in self.windows],
        }

    def to_csv(self) -> str:
        """One row a window: start, end, speech, emotion, confidence, then each probability."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["start", "end", "speech", "emotion", "confidence", *self.labels])
        for w in self.windows:
            p = w.prediction
            if p is None:
                writer.writerow([f"{w.start:.3f}", f"{w.end:.3f}", 0, "", "", *[""] * len(self.labels)])
            else:
                writer.writerow(
                    [f"{w.start:.3f}", f"{w.end:.3f}", 1, p.emotion, f"{p.confidence:.4f}",
                     *[f"{p.probabilities[k]:.4f}" for k in self.labels]]
                )
        return buffer.getvalue()


def _sliding(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """Windows ``(start_sample, samples)`` over a stream of blocks; the last may be shorter."""
    buffer = np.zeros(0, np.float32)
    offset = 0  # sample index of buffer[0]
    next_start = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while next_start + window <= offset + buffer.size:
            i = next_start - offset
            yield next_start, buffer[i : i + window]
            next_start += hop
        drop = max(0, next_start - offset)
        buffer, offset = buffer[drop:], offset + drop
    end = offset + buffer.size
    if next_start < end and (next_start == 0 or next_start + window - hop < end):
        yield next_start, buffer[next_start - offset :]


class EmotionClassifier:
    """Speech emotion classifier backed by a verified model bundle.

    >>> clf = EmotionClassifier.load()
    >>> clf.predict("speech.wav").emotion
    """

    def __init__(self, bundle: Bundle, *, jobs: int | None = None) -> None:
        """``jobs``: threads that score the windows of a long recording (default: one per CPU
        core; 1 keeps all work on the calling thread)."""
        self.bundle = bundle
        self.jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
        if self.jobs < 1:
            raise ParameterError("jobs must be at least 1.")
        self._pool = None  # the threads, started by the first recording longer than one window
        self._pool_lock = threading.Lock()
        self.labels = bundle.labels
        from .model import LiteModel

        try:
            self.extractor = load_extractor(bundle.config["features"], bundle.arrays)
        except (KeyError, TypeError, ParameterError) as e:
            raise ArtifactError(f"The feature configuration in {bundle.path} is unusable ({e}); rebuild the artifacts.") from e
        self.model = LiteModel(bundle.tflite)
        self._mean = np.asarray(bundle.arrays["mean"], np.float32)
        self._scale = np.asarray(bundle.arrays["scale"], np.float32)
        if self.model.n_classes != len(self.labels):
            raise ArtifactError(
                f"The model in {bundle.path} has {self.model.n_classes} outputs but labels.txt lists "
                f"{len(self.labels)} labels; rebuild the artifacts."
            )
        n_features = self.extractor.n_features
        if self.model.n_features != n_features or self._mean.shape != (n_features,) or self._scale.shape != (n_features,):
            raise ArtifactError(f"The model and feature files in {bundle.path} disagree on the feature count; rebuild the artifacts.")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, jobs: int | None = None) -> EmotionClassifier:
        """Load the shipped artifacts, or the bundle in ``path``; ``jobs`` as in the constructor."""
        return cls(load_bundle(path), jobs=jobs)

    @property
    def metrics(self) -> dict:
        return self.bundle.metrics

    # ------------------------------------------------------------ core

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities of preprocessed clips. ``(batch, N_SAMPLES) -> (batch, classes)``."""
        features = self.extractor(np.atleast_2d(clips))
        return self.model((features - self._mean) / self._scale)

    def _classify_signal(self, y: np.ndarray) -> Prediction:
        """Verdict on a mono 16 kHz signal of any length.

        Up to ``IN_MEMORY_SECONDS``: silence is trimmed first, so a clip that fits one window
        is judged exactly as in training. Longer signals are judged as a stream of windows,
        the same way a long file is, so a file and its samples always agree.
        """
        if y.size > IN_MEMORY_SECONDS * audio.SAMPLE_RATE:
            return self._timeline_from_blocks([y]).summary
        speech = audio.check_speech(y)
        if speech.size <= audio.N_SAMPLES:
            return Prediction.from_probabilities(self.labels, self.probabilities(audio.to_clip(speech))[0])
        return self._timeline_from_blocks([speech], duration=speech.size / audio.SAMPLE_RATE).summary

    # ------------------------------------------------------------ public

    def predict(self, source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None = None) -> Prediction:
        """Emotion of a file (``source`` a path) or of samples (``source`` an array with ``sample_rate``).

        Arrays may be ``(n,)`` or ``(n, channels)``, any integer or float type, any rate.
        Raises :class:`~ser_core.errors.SERError` subclasses with a readable message.
        """
        if isinstance(source, (str, os.PathLike)):
            if sample_rate is not None:
                raise ParameterError("Pass sample_rate only with an array; a file states its own rate.")
            return self._predict_file(Path(source))
        if sample_rate is None:
            raise ParameterError("An array needs its sample_rate, for example predict(samples, 16000).")
        return self._classify_signal(audio.prepare(source, sample_rate))

    def _predict_file(self, path: Path) -> Prediction:
        blocks = audio.stream(path)
        head: list[np.ndarray] = []
        size = 0
        limit = int(IN_MEMORY_SECONDS * audio.SAMPLE_RATE)
        for block in blocks:
            head.append(block)
            size += block.size
            if size > limit:
                return self._timeline_from_blocks(itertools.chain(head, blocks)).summary
        return self._classify_signal(np.concatenate(head))

    def predict_with_timeline(self, samples: np.ndarray, sample_rate: int) -> tuple[Prediction, Timeline]:
        """``(predict(samples, sample_rate), timeline(samples, sample_rate))`` with the work shared.

        Over ``IN_MEMORY_SECONDS`` the verdict *is* the timeline's summary, so the windows are
        analysed once instead of twice.
        """
        y = audio.prepare(samples, sample_rate)
        timeline = self._timeline_from_blocks([y])
        if y.size > IN_MEMORY_SECONDS * audio.SAMPLE_RATE:
            return timeline.summary, timeline
        return self._classify_signal(y), timeline

    def timeline(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        sample_rate: int | None = None,
        *,
        window: float = audio.CLIP_SECONDS,
        hop: float = DEFAULT_HOP_SECONDS,
    ) -> Timeline:
        """Emotion over time with sliding windows of ``window`` seconds every ``hop`` seconds.

        Files are streamed, so recordings of any length use bounded memory. Windows without
        speech are kept with ``prediction=None``.
        """
        if not (audio.MIN_SPEECH_SECONDS <= window <= 60.0):
            raise ParameterError(f"The window must be between {audio.MIN_SPEECH_SECONDS} and 60 seconds.")
        if not (0.05 <= hop <= window):
            raise ParameterError("The hop must be at least 0.05 s and no longer than the window.")
        if isinstance(source, (str, os.PathLike)):
            if sample_rate is not None:
                raise ParameterError("Pass sample_rate only with an array; a file states its own rate.")
            blocks: Iterable[np.ndarray] = audio.stream(Path(source))
        else:
            if sample_rate is None:
                raise ParameterError("An array needs its sample_rate, for example timeline(samples, 16000).")
            blocks = [audio.prepare(source, sample_rate)]
        return self._timeline_from_blocks(blocks, window=window, hop=hop)

    def _timeline_from_blocks(
        self,
        blocks: Iterable[np.ndarray],
        *,
        window: float = audio.CLIP_SECONDS,
        hop: float = DEFAULT_HOP_SECONDS,
        duration: float | None = None,
    ) -> Timeline:
        """Windows are scored in batches of ``BATCH_WINDOWS``, on ``jobs`` threads at once (the
        features release the GIL for most of their work: FFTs, sorts, matrix products)."""
        sr = audio.SAMPLE_RATE
        win, step = int(round(window * sr)), int(round(hop * sr))
        windows: list[Window] = []  # windows with speech hold None until their batch is scored
        pending: list[tuple[int, tuple[float, float], np.ndarray]] = []  # (index in windows, span, clip)
        inflight: deque[tuple[list[tuple[int, tuple[float, float]]], Callable[[], np.ndarray]]] = deque()
        end_sample = 0

        def settle() -> None:
            slots, wait = inflight.popleft()
            for (i, span), p in zip(slots, wait(), strict=True):
                windows[i] = Window(*span, Prediction.from_probabilities(self.labels, p))

        def flush() -> None:
            if pending:
                clips = np.stack([clip for _, _, clip in pending])
                inflight.append(([(i, span) for i, span, _ in pending], self._submit(clips)))
                pending.clear()
            while len(inflight) > INFLIGHT_PER_THREAD * self.jobs:
                settle()

        for start, samples in _sliding(blocks, win, step):
            span = (start / sr, (start + samples.size) / sr)
            end_sample = start + samples.size
            try:
                speech = audio.check_speech(samples)
            except AudioError:
                windows.append(Window(*span, None))
                continue
            pending.append((len(windows), span, audio.to_clip(speech)))
            windows.append(None)
            if len(pending) >= BATCH_WINDOWS:
                flush()
        flush()
        while inflight:
            settle()
        if not windows:
            raise AudioError("The recording holds no audio samples; choose a file with sound in it.")
        total = duration if duration is not None else end_sample / sr
        return Timeline(self.labels, window, hop, total, windows)

    def _submit(self, clips: np.ndarray) -> Callable[[], np.ndarray]:
        """Start scoring ``clips``; returns a function that waits for their probabilities."""
        if self.jobs == 1:
            probs = self.probabilities(clips)
            return lambda: probs
        return self._threads().submit(self.probabilities, clips).result

    def _threads(self):
        """The scoring threads (started on first use, kept for later recordings)."""
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="ser-core")
            return self._pool

    def close(self) -> None:
        """Stop the scoring threads, if any were started (they also stop when Python exits)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
