"""The public entry point: :class:`EmotionClassifier` turns audio into emotions.

The path of every verdict: a file or an array becomes a mono 16 kHz signal
(:func:`ser_core.audio.load` or :func:`ser_core.audio.stream`), spans of it (timeline windows,
or utterances from :mod:`ser_core.inference.utterances`) become clips with the bundle's
:class:`~ser_core.audio.Preprocessing` (:func:`ser_core.audio.windows`), clips become features
and probabilities (:meth:`EmotionClassifier.predictions`, where a speaker's voice enters), and
:meth:`EmotionClassifier._judge` turns each span's clips into a :class:`Prediction`.
Speech that fits one clip is judged as one clip, exactly as in training; longer speech is
judged clip by clip and the verdict is the mean.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import audio
from .. import bundle as bundle_files
from ..bundle import Bundle
from ..errors import ArtifactError, AudioError, Cancelled, NoSpeechError, ParameterError
from ..features import load_extractor
from .intensity import IntensityModel
from .runtime import LiteModel, one_blas_thread
from .utterances import DEFAULT_DETECTOR, Segmentation, spans
from .verdicts import Prediction, Timeline, Utterances, Window
from .voice import Population, Voice, feature_fingerprint

__all__ = ["EmotionClassifier", "AdaptedModel", "Heard", "check_timeline"]

DEFAULT_HOP_SECONDS = 1.0  # timeline step
MIN_HOP_SECONDS = 0.05  # shortest timeline step
MAX_WINDOW_SECONDS = 60.0  # longest timeline window
IN_MEMORY_SECONDS = 60.0  # longer files are analysed as a stream, in bounded memory
BATCH_WINDOWS = 8  # clips per feature/model batch: small, so even a short recording keeps every thread busy
INFLIGHT_PER_THREAD = 4  # batches queued per thread: all stay busy, memory stays bounded
NO_CLIPS = np.zeros((0, 0), np.float32)  # what a judged span keeps of its clips
MAX_REFERENCE_SECONDS = 120.0  # longest reference recording: a minute is plenty
DAMAGED_VOICE = (
    "This voice does not fit this model's features and emotions, or holds sums no speech gives; calibrate again."
)
NO_REFERENCE_SPEECH = (
    "The reference recordings hold no usable speech; record 5 to 10 seconds of your everyday voice, "
    "reading a neutral sentence close to the microphone."
)


@dataclass(frozen=True)
class AdaptedModel:
    """The adapted model: it judges features normalised by a speaker's voice (the training
    population's statistics turn the voice into a location and a spread), with its own
    standardisation after that."""

    model: LiteModel
    mean: np.ndarray
    scale: np.ndarray
    population: Population

    def __call__(self, features: np.ndarray, normaliser: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        location, spread = normaliser
        return self.model(((features - location) / spread - self.mean) / self.scale)


@dataclass(frozen=True)
class Heard:
    """A recording as :meth:`EmotionClassifier.predict` judges it, up to the model: each span
    (its clips freed) with its clips' feature rows ``(k, n_features)``; ``long`` when it is judged
    as a timeline's summary; ``error`` why it cannot be judged (no speech); ``seconds`` of speech.
    What lets a batch compute every file's features once and judge them after learning the
    speaker's voice from all of them (``--same-speaker``)."""

    spans: list[tuple[audio.Span, np.ndarray]]
    long: bool = False
    error: AudioError | None = None
    seconds: float = 0.0

    @property
    def rows(self) -> np.ndarray:
        """Every clip's feature rows. ``(clips, n_features)``."""
        parts = [features for _, features in self.spans if len(features)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class EmotionClassifier:
    """Speech emotion classifier backed by a verified model bundle.

    >>> clf = EmotionClassifier()  # the shipped model; EmotionClassifier.load("my-bundle/") for another
    >>> clf.predict("speech.wav").emotion
    """

    def __init__(self, bundle: Bundle | str | os.PathLike[str] | None = None, *, jobs: int | None = None) -> None:
        """``bundle``: a read :class:`Bundle`, or the folder of one (default: the shipped model, or
        ``$SER_ARTIFACTS``; :func:`ser_core.bundle.default_folder`). ``jobs``: threads that score
        the windows of a long recording (default: one per CPU core; 1 keeps all work on the
        calling thread)."""
        if not isinstance(bundle, Bundle):
            bundle = bundle_files.read(bundle)
        self.bundle = bundle
        self.jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
        if self.jobs < 1:
            raise ParameterError("jobs must be at least 1.")
        self._pool = None  # the threads, started by the first recording longer than one window
        self._pool_lock = threading.Lock()
        self.labels = bundle.labels
        where = bundle.where()
        try:
            self.preprocessing = audio.Preprocessing.from_dict(bundle.preprocessing)
        except (KeyError, TypeError, ParameterError) as e:
            raise ArtifactError(
                f"The preprocessing settings in {where} are unusable ({e}); rebuild the artifacts."
            ) from e
        try:
            self.extractor = load_extractor(bundle.features, bundle.filters)
        except (KeyError, TypeError, ParameterError) as e:
            raise ArtifactError(
                f"The feature configuration in {where} is unusable ({e}); rebuild the artifacts."
            ) from e
        if self.extractor.config.n_samples != self.preprocessing.n_samples:
            raise ArtifactError(
                f"The features in {where} expect clips of {self.extractor.config.n_samples} samples but its "
                f"preprocessing makes {self.preprocessing.n_samples}; rebuild the artifacts."
            )
        self.model = LiteModel(bundle.model)
        self._mean = np.asarray(bundle.mean, np.float32)
        self._scale = np.asarray(bundle.scale, np.float32)
        if self.model.n_classes != len(self.labels):
            raise ArtifactError(
                f"The model in {where} has {self.model.n_classes} outputs but labels.txt lists "
                f"{len(self.labels)} labels; rebuild the artifacts."
            )
        n_features = self.extractor.n_features
        if (
            self.model.n_features != n_features
            or self._mean.shape != (n_features,)
            or self._scale.shape != (n_features,)
        ):
            raise ArtifactError(
                f"The model and feature files in {where} disagree on the feature count; rebuild the artifacts."
            )
        self.fingerprint = feature_fingerprint(self.extractor.config.to_dict())
        self.adapted = None if bundle.adapted is None else self._adapted_model(bundle)
        try:
            self.intensity = IntensityModel.from_part(bundle.intensity, self.labels, n_features)
        except ArtifactError as e:
            raise ArtifactError(f"In {where}: {e}") from e

    def _adapted_model(self, bundle: Bundle) -> AdaptedModel:
        """The bundle's adapted model, checked against its description."""
        part = bundle.adapted
        n = self.extractor.n_features
        try:
            population = Population(**{k: np.asarray(v, np.float64) for k, v in part.population.items()})
            population.check(n, len(self.labels))
        except (TypeError, ParameterError) as e:
            raise ArtifactError(f"In {bundle.where()}: {e}; rebuild the artifacts.") from e
        mean, scale = np.asarray(part.mean, np.float32), np.asarray(part.scale, np.float32)
        model = LiteModel(part.model)
        if model.n_classes != len(self.labels) or model.n_features != n or not mean.shape == scale.shape == (n,):
            raise ArtifactError(
                f"The adapted model in {bundle.where()} does not fit its features or labels; rebuild the artifacts."
            )
        return AdaptedModel(model, mean, scale, population)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, jobs: int | None = None) -> EmotionClassifier:
        """Load the shipped model (or ``$SER_ARTIFACTS``), or the bundle in ``path``; ``jobs`` as in the constructor."""
        return cls(bundle_files.read(path), jobs=jobs)

    @property
    def metrics(self) -> dict:
        return self.bundle.metrics

    # ------------------------------------------------------------ core

    def probabilities(self, clips: np.ndarray, voice: Voice | None = None) -> np.ndarray:
        """Class probabilities of preprocessed clips, relative to ``voice`` when one is given.
        ``(batch, n_samples) -> (batch, classes)``."""
        return self.classify_features(self.features(clips), voice)

    def features(self, clips: np.ndarray) -> np.ndarray:
        """The feature rows of preprocessed clips, BLAS on one thread. ``(batch, n_samples) -> (batch, n_features)``."""
        with one_blas_thread():
            return self.extractor(np.atleast_2d(clips))

    def predictions(self, clips: np.ndarray, voice: Voice | None = None) -> list[Prediction]:
        """One verdict a preprocessed clip ``(batch, n_samples)``, with its intensity when the
        bundle has an intensity model (judged on the clip's own features, weighted by its verdict)."""
        with one_blas_thread():
            return self.judge_features(self.extractor(np.atleast_2d(clips)), voice)

    def judge_features(self, features: np.ndarray, voice: Voice | None = None) -> list[Prediction]:
        """One verdict a row of raw features ``(batch, n_features)``: :meth:`predictions` after the features."""
        with one_blas_thread():
            probs = self.classify_features(features, voice)
            if self.intensity is None:
                return [Prediction.from_probabilities(self.labels, p) for p in probs]
            strengths = self.intensity.strength(features, probs, self.labels)
        return [Prediction.from_probabilities(self.labels, p, s) for p, s in zip(probs, strengths, strict=True)]

    def classify_features(self, features: np.ndarray, voice: Voice | None = None) -> np.ndarray:
        """Class probabilities of raw feature rows ``(batch, n_features)``: the one place where a
        voice enters. With a voice that knows enough of its speaker (:attr:`Voice.source`), the
        adapted model judges the features normalised by it; otherwise the default model does."""
        if voice is not None:
            normaliser = self._normaliser(voice)
            if normaliser is not None:
                with np.errstate(over="ignore", invalid="ignore"):  # refused below, not warned about
                    probabilities = self.adapted(features, normaliser)
                if not np.all(np.isfinite(probabilities)):  # sums far beyond any speaker's
                    raise ParameterError(DAMAGED_VOICE)
                return probabilities
        return self.model((features - self._mean) / self._scale)

    def check_voice(self, voice: Voice) -> Voice:
        """``voice``, when this model can judge relative to it; else :class:`ParameterError` saying
        why (not a voice, a model without an adapted variant, a voice of another model's features,
        or sums that do not fit or that no speech gives). What a server calls on a voice it is
        sent, before any work."""
        self._normaliser(voice)
        return voice

    def _normaliser(self, voice: Voice) -> tuple[np.ndarray, np.ndarray] | None:
        """The voice's ``(location, spread)`` (:meth:`Population.normaliser`), checked."""
        self._check_voice(voice)
        with np.errstate(all="ignore"):  # a damaged voice's overflow is refused below, not warned about
            normaliser = self.adapted.population.normaliser(voice)
        if normaliser is not None and not all(np.all(np.isfinite(part)) for part in normaliser):
            raise ParameterError(DAMAGED_VOICE)
        return normaliser

    def _check_voice(self, voice: Voice) -> None:
        if not isinstance(voice, Voice):
            raise ParameterError("voice must be a Voice, as calibrate() returns.")
        self._require_adaptation()
        if voice.features != self.fingerprint:
            raise ParameterError("This voice was made with another model's features; calibrate again with this model.")
        d = (self.extractor.n_features,)
        sums = [a for part in (voice.reference, voice.session) if part is not None for a in (part.total, part.squares)]
        heard = voice.probabilities
        if any(a is not None and a.shape != d for a in sums) or (
            heard is not None and heard.shape != (len(self.labels),)
        ):
            raise ParameterError(DAMAGED_VOICE)

    def _require_adaptation(self) -> None:
        if self.adapted is None:
            raise ParameterError(
                "This model has no adapted variant (or one of an older design); retrain it with this version's train.py."
            )

    def _windows(self, blocks: Iterable[np.ndarray], window: float | None, hop: float | None = None):
        return audio.windows(blocks, window=window, hop=hop, config=self.preprocessing)

    def _predict_signal(
        self, y: np.ndarray, voice: Voice | None = None, stop: threading.Event | None = None
    ) -> Prediction:
        """Verdict on a mono 16 kHz signal of any length.

        Up to ``IN_MEMORY_SECONDS`` the signal is one span (:func:`ser_core.audio.windows`:
        silence trimmed first, so speech that fits one clip is judged exactly as in training).
        Longer signals are judged as a stream of windows, the same way a long file is, so a file
        and its samples always agree.
        """
        if y.size > IN_MEMORY_SECONDS * audio.SAMPLE_RATE:
            return self._timeline([y], voice=voice, stop=stop).summary
        (span,) = self._windows([y], None)
        if span.error is not None:
            raise span.error
        if not span.pooled:  # one clip, on this thread: the common case, kept short
            return self.predictions(span.clips, voice)[0]
        ((_, prediction),) = self._judge([span], voice, stop)
        return prediction

    def _timeline(
        self,
        blocks: Iterable[np.ndarray],
        *,
        window: float | None = None,
        hop: float = DEFAULT_HOP_SECONDS,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Timeline:
        window = self.preprocessing.clip_seconds if window is None else window
        judged = self._judge(self._windows(blocks, window, hop), voice, stop)
        if not judged:
            raise AudioError("The recording holds no audio samples; choose a file with sound in it.")
        windows = [Window(span.start, span.end, prediction) for span, prediction in judged]
        return Timeline(self.labels, window, hop, windows[-1].end, windows)

    def _judge(
        self, spans: Iterable[audio.Span], voice: Voice | None = None, stop: threading.Event | None = None
    ) -> list[tuple[audio.Span, Prediction | None]]:
        """Each span (without its clips) with its verdict (``None`` without speech).

        The clips of all spans are scored in order, in batches of ``BATCH_WINDOWS``, on
        ``jobs`` threads at once (the features release the GIL for most of their work: FFTs,
        sorts, matrix products); at most ``INFLIGHT_PER_THREAD`` batches per thread wait.
        ``voice`` adapts every clip. Once ``stop`` is set, the next window raises
        :class:`~ser_core.errors.Cancelled` (a server sets it when the client leaves).
        """
        if voice is not None:
            self._check_voice(voice)  # before any work, in the caller's thread
        judged: list[audio.Span] = []
        scores: list[list[Prediction]] = []  # per span, the verdicts of its clips
        pending: list[tuple[int, np.ndarray]] = []  # (span index, clip)
        inflight: deque[tuple[list[int], Callable[[], list[Prediction]]]] = deque()

        def settle() -> None:
            owners, wait = inflight.popleft()
            for i, p in zip(owners, wait(), strict=True):
                scores[i].append(p)

        def flush() -> None:
            if pending:
                clips = np.stack([clip for _, clip in pending])
                inflight.append(([i for i, _ in pending], self._submit(clips, voice)))
                pending.clear()
            while len(inflight) > INFLIGHT_PER_THREAD * self.jobs:
                settle()

        for span in spans:
            _check_stop(stop)
            judged.append(replace(span, clips=NO_CLIPS))  # its clips are freed once scored
            scores.append([])
            for clip in span.clips:
                pending.append((len(judged) - 1, clip))
                if len(pending) >= BATCH_WINDOWS:
                    flush()
        flush()
        while inflight:
            settle()
        return [(span, self._verdict(span, clips)) for span, clips in zip(judged, scores, strict=True)]

    def _verdict(self, span: audio.Span, clips: list[Prediction]) -> Prediction | None:
        if not clips:
            return None
        return Prediction.mean(self.labels, clips) if span.pooled else clips[0]

    # ------------------------------------------------------------ public

    def predict(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        sample_rate: int | None = None,
        *,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Prediction:
        """Emotion of a file (``source`` a path) or of samples (``source`` an array with ``sample_rate``).

        Arrays may be ``(n,)`` or ``(n, channels)``, any integer or float type, any rate. With a
        ``voice`` (:meth:`calibrate`, :meth:`adapt`) the adapted model judges the speech relative to it.
        Setting ``stop`` from another thread ends a long analysis early with
        :class:`~ser_core.errors.Cancelled`. Raises :class:`~ser_core.errors.SERError`
        subclasses with a readable message.
        """
        if not isinstance(source, (str, os.PathLike)):
            return self._predict_signal(audio.load(source, sample_rate), voice, stop)
        blocks, long = _whole_or_streamed(_file_blocks(source, sample_rate))
        if long:
            return self._timeline(blocks, voice=voice, stop=stop).summary
        return self._predict_signal(blocks[0], voice, stop)

    def calibrate(
        self,
        recordings: Iterable[str | os.PathLike[str] | np.ndarray],
        sample_rate: int | None = None,
        *,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Voice:
        """A speaker's :class:`Voice` (``voice`` with more in it, when given) from recordings of
        their everyday, unemotional voice: files, or arrays at ``sample_rate``. One sentence is
        enough to start; 5 to 60 seconds is better. Every clip of the reading counts.

        Raises :class:`AudioError` when none of them holds usable speech. ``stop`` as in
        :meth:`predict`: checked before each recording and each batch of clips.
        """
        self._require_adaptation()
        voice = self._own(voice)
        rows, seconds = [], 0.0
        for recording in _recordings(recordings):
            _check_stop(stop)
            rate = None if isinstance(recording, (str, os.PathLike)) else sample_rate
            (span,) = self._windows([audio.load(recording, rate, max_seconds=MAX_REFERENCE_SECONDS)], None)
            for start in range(0, len(span.clips), BATCH_WINDOWS):
                _check_stop(stop)
                rows.append(self.features(span.clips[start : start + BATCH_WINDOWS]))
            if len(span.clips):
                seconds += span.speech
        if not rows:
            raise AudioError(NO_REFERENCE_SPEECH)
        return voice.with_reference(np.concatenate(rows), seconds)

    def adapt(
        self,
        sources: Iterable[str | os.PathLike[str] | np.ndarray | Heard],
        sample_rate: int | None = None,
        *,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Voice:
        """A :class:`Voice` (``voice`` with more in it, when given) learned from recordings to be
        judged, all of one speaker (``--same-speaker``, the demo): files, arrays at ``sample_rate``,
        or what :meth:`hear` made of them. Verdicts use it once it holds enough speech
        (:attr:`Voice.source`); an unreadable file or one without speech adds nothing (it is
        reported when judged). ``stop`` as in :meth:`predict`.
        """
        self._require_adaptation()
        voice = self._own(voice)
        for source in _recordings(sources):
            _check_stop(stop)
            heard = source if isinstance(source, Heard) else self._heard_or_none(source, sample_rate, stop)
            rows = None if heard is None else heard.rows
            if rows is not None and len(rows):
                voice = voice.with_session(rows, self.classify_features(rows), heard.seconds)
        return voice

    def voice(self) -> Voice:
        """An empty voice for this model's features, to which :meth:`calibrate` and :meth:`adapt` add."""
        return Voice(self.fingerprint)

    def _own(self, voice: Voice | None) -> Voice:
        if voice is None:
            return self.voice()
        self._check_voice(voice)
        return voice

    def _heard_or_none(
        self, source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None, stop: threading.Event | None = None
    ) -> Heard | None:
        try:
            return self.hear(source, sample_rate, stop=stop)
        except AudioError:
            return None

    def hear(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        sample_rate: int | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> Heard:
        """A recording's clips as feature rows, spanned as :meth:`predict` spans them; :meth:`judge`
        finishes the verdict. ``judge(hear(x), voice)`` equals ``predict(x, voice=voice)``.
        ``stop`` as in :meth:`predict`: checked before each span."""
        if isinstance(source, (str, os.PathLike)):
            blocks, long = _whole_or_streamed(_file_blocks(source, sample_rate))
        else:
            y = audio.load(source, sample_rate)
            long, blocks = y.size > IN_MEMORY_SECONDS * audio.SAMPLE_RATE, [y]
        if long:
            spans = self._windows(blocks, self.preprocessing.clip_seconds, DEFAULT_HOP_SECONDS)
        else:
            spans = self._windows(blocks, None)
        heard, seconds, error = [], 0.0, None
        for span in spans:
            _check_stop(stop)
            features = self.features(span.clips) if len(span.clips) else np.zeros((0, self.extractor.n_features))
            heard.append((replace(span, clips=NO_CLIPS), features))
            seconds += DEFAULT_HOP_SECONDS * len(span.clips) if long else span.speech
            error = error if long else span.error
        return Heard(heard, long, error, seconds)

    def judge(self, heard: Heard, voice: Voice | None = None) -> Prediction:
        """The verdict on a recording :meth:`hear` made into features, relative to ``voice``."""
        if heard.error is not None:
            raise heard.error
        verdicts = self._span_verdicts(heard, voice)
        if not heard.long:
            return verdicts[0]
        voiced = [v for v in verdicts if v is not None]
        if not voiced:
            raise AudioError(audio.NO_SPEECH)
        return Prediction.mean(self.labels, voiced)

    def judge_timeline(self, heard: Heard, voice: Voice | None = None) -> Timeline:
        """The timeline of a recording :meth:`hear` heard as a stream (``heard.long``: longer than
        ``IN_MEMORY_SECONDS``), from the same features: :meth:`timeline` with its default window and
        hop, whose summary is :meth:`judge`'s verdict. A shorter recording was heard as one span:
        call :meth:`timeline` for its windows."""
        if not heard.long:
            raise ParameterError("Only a recording heard as a stream holds its timeline; call timeline() for it.")
        verdicts = self._span_verdicts(heard, voice)
        windows = [Window(span.start, span.end, v) for (span, _), v in zip(heard.spans, verdicts, strict=True)]
        return Timeline(self.labels, self.preprocessing.clip_seconds, DEFAULT_HOP_SECONDS, windows[-1].end, windows)

    def _span_verdicts(self, heard: Heard, voice: Voice | None) -> list[Prediction | None]:
        """Each span's verdict of a heard recording (``None`` for a span without speech)."""
        rows = heard.rows
        clips: list[Prediction] = []
        for start in range(0, len(rows), BATCH_WINDOWS):  # in the batches _judge scores clips in: the same numbers
            clips += self.judge_features(rows[start : start + BATCH_WINDOWS], voice)
        verdicts, taken = [], 0
        for span, features in heard.spans:
            verdicts.append(self._verdict(span, clips[taken : taken + len(features)]))
            taken += len(features)
        return verdicts

    def predict_with_timeline(
        self, samples: np.ndarray, sample_rate: int, *, voice: Voice | None = None
    ) -> tuple[Prediction, Timeline]:
        """``(predict(samples, sample_rate), timeline(samples, sample_rate))`` with the work shared.

        Over ``IN_MEMORY_SECONDS`` the verdict *is* the timeline's summary, so the windows are
        analysed once instead of twice.
        """
        y = audio.load(samples, sample_rate)
        timeline = self._timeline([y], voice=voice)
        if y.size > IN_MEMORY_SECONDS * audio.SAMPLE_RATE:
            return timeline.summary, timeline
        return self._predict_signal(y, voice), timeline

    def timeline(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        sample_rate: int | None = None,
        *,
        window: float | None = None,
        hop: float = DEFAULT_HOP_SECONDS,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Timeline:
        """Emotion over time with sliding windows of ``window`` seconds (default: one clip of the
        model, 3.5 s) every ``hop`` seconds.

        A window longer than one clip is judged as :meth:`predict` judges long speech: clip by
        clip, and the mean. Files are streamed, so recordings of any length use bounded memory.
        Windows without speech are kept with ``prediction=None``. ``stop`` as in :meth:`predict`.
        """
        window = self.preprocessing.clip_seconds if window is None else window
        check_timeline(window, hop)
        return self._timeline(_blocks(source, sample_rate), window=window, hop=hop, voice=voice, stop=stop)

    def utterances(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        sample_rate: int | None = None,
        *,
        detector: str = DEFAULT_DETECTOR,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Utterances:
        """Emotion per utterance: the recording split on its pauses (:mod:`ser_core.inference.utterances`,
        with voice-activity ``detector``), each utterance judged as :meth:`predict` judges a
        recording, relative to ``voice`` when one is given. Files are streamed and arrays read block by
        block, so what it needs beyond the recording does not grow with its length.
        Raises :class:`AudioError` when no utterance is found. ``stop`` as in :meth:`predict`.
        """
        settings = Segmentation(detector=detector)
        counted = _Counted(_blocks(source, sample_rate))
        found = spans(counted, settings=settings, config=self.preprocessing)
        judged = self._judge(found, voice, stop)
        if not judged:
            raise NoSpeechError()
        rows = [Window(span.start, span.end, prediction) for span, prediction in judged]
        return Utterances(self.labels, 0.0, 0.0, counted.samples / audio.SAMPLE_RATE, rows, detector)

    segments = utterances  # the name of timeline --segments and POST /v1/segments, kept for callers

    def _submit(self, clips: np.ndarray, voice: Voice | None) -> Callable[[], list[Prediction]]:
        """Start scoring ``clips``; returns a function that waits for their verdicts."""
        if self.jobs == 1:
            verdicts = self.predictions(clips, voice)
            return lambda: verdicts
        return self._threads().submit(self.predictions, clips, voice).result

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


class _Counted:
    """A stream of blocks that counts the samples that went through it."""

    def __init__(self, blocks: Iterable[np.ndarray]) -> None:
        self.blocks = blocks
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            self.samples += block.size
            yield block


def _blocks(source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None) -> Iterable[np.ndarray]:
    """A recording as blocks of its 16 kHz signal: a file streamed, an array in views of the
    decoder's block length, so that what works block by block (the voice-activity detector's
    model, above all) holds one block at a time however long the array is."""
    if isinstance(source, (str, os.PathLike)):
        return _file_blocks(source, sample_rate)
    y = audio.load(source, sample_rate)
    step = int(audio.DECODE_BLOCK_SECONDS * audio.SAMPLE_RATE)
    return [y[start : start + step] for start in range(0, y.size, step)]


def _file_blocks(path: str | os.PathLike[str], sample_rate: int | None) -> Iterator[np.ndarray]:
    """A file's 16 kHz signal, streamed in blocks; a ``sample_rate`` beside a file is a usage error."""
    if sample_rate is not None:
        raise ParameterError("Pass sample_rate only with an array; a file states its own rate.")
    return audio.stream(Path(path))


def _whole_or_streamed(blocks: Iterator[np.ndarray]) -> tuple[Iterable[np.ndarray], bool]:
    """``([signal], False)`` for a recording of up to :data:`IN_MEMORY_SECONDS`, judged whole;
    ``(blocks, True)`` for a longer one, judged as a stream of windows."""
    head, long = audio.take(blocks, int(IN_MEMORY_SECONDS * audio.SAMPLE_RATE))
    return (itertools.chain(head, blocks), True) if long else ([np.concatenate(head)], False)


def _check_stop(stop: threading.Event | None) -> None:
    """Raise :class:`~ser_core.errors.Cancelled` once ``stop`` is set (a server sets it when the client leaves)."""
    if stop is not None and stop.is_set():
        raise Cancelled()


def _recordings(recordings: object) -> list:
    """One recording (a path or an array) or several, as a list."""
    return [recordings] if isinstance(recordings, (str, os.PathLike, np.ndarray)) else list(recordings)


def check_timeline(window: float, hop: float) -> None:
    """Refuse a timeline window or hop outside what the library accepts."""
    if not (audio.MIN_SPEECH_SECONDS <= window <= MAX_WINDOW_SECONDS):
        raise ParameterError(
            f"The window must be between {audio.MIN_SPEECH_SECONDS} and {MAX_WINDOW_SECONDS:g} seconds."
        )
    if not (MIN_HOP_SECONDS <= hop <= window):
        raise ParameterError(f"The hop must be at least {MIN_HOP_SECONDS} s and no longer than the window.")
