"""What one request may ask of a server: the limits the REST API and the demo share, defined once,
and the budget that holds each request to them.

The command line reads recordings of any length (it runs on its owner's machine); the servers
refuse, with one sentence, anything longer than :data:`MAX_SECONDS` as soon as the file's header
or its decoding shows it, uploads over :data:`MAX_UPLOAD_BYTES` while they arrive, timelines of
more than :data:`MAX_WINDOWS` windows before any of them is judged, more than
:data:`MAX_REFERENCES` reference recordings, more than :data:`MAX_REFERENCE_SECONDS` of them
in all, more than :data:`MAX_RECORDINGS` recordings in one ``POST /v1/voice`` (and more than
:data:`MAX_SECONDS` of them in all), and a saved voice larger than :data:`MAX_VOICE_BYTES`.

A request's :class:`Budget` is the audio it asks the server to judge, in seconds: the recording
(for a timeline, every window; for ``POST /v1/voice``, every recording), plus every reference
recording. A saved voice sent with a request costs no audio. It is counted from the uploads'
headers before any of them is decoded and before the request waits for a slot, so a request over
a limit is refused at once; it chooses the request's lane (:attr:`Budget.heavy`: more than
:data:`LIGHT_SECONDS`); and while the request runs it bounds what is decoded, so a header that
lies or says nothing cannot keep a light slot busy (the request is moved to the heavy lane).

A live stream (``GET /v1/stream``) is bounded the same way: at most :data:`MAX_STREAMS` at once
(one more is refused at the handshake), each at most :data:`MAX_STREAM_SECONDS` long, in messages
of at most :data:`MAX_MESSAGE_BYTES`, its audio arriving at most :data:`STREAM_SPEED` times faster
than real time after a head start of :data:`STREAM_HEAD_START_SECONDS`, and closed after
:data:`STREAM_IDLE_SECONDS` without a message.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .. import audio
from ..errors import AudioError, Cancelled, ParameterError
from ..inference import classifier

__all__ = [
    "Limits",
    "LIMITS",
    "Budget",
    "Heavier",
    "MAX_SECONDS",
    "MAX_UPLOAD_BYTES",
    "MAX_WINDOWS",
    "MAX_REFERENCES",
    "MAX_REFERENCE_SECONDS",
    "MAX_CALIBRATION_SECONDS",
    "MAX_RECORDINGS",
    "MAX_VOICE_BYTES",
    "LIGHT_SECONDS",
    "MAX_STREAMS",
    "MAX_STREAM_SECONDS",
    "MAX_MESSAGE_BYTES",
    "STREAM_SPEED",
    "STREAM_HEAD_START_SECONDS",
    "STREAM_IDLE_SECONDS",
]

MAX_SECONDS = 600.0  # longest recording a server analyses: 10 minutes
MAX_UPLOAD_BYTES = 64 * 2**20  # largest upload: a 30-minute 16-bit 16 kHz WAV is 55 MiB
MAX_WINDOWS = 2_400  # most windows in one timeline: 10 minutes every 0.25 s
MAX_REFERENCES = 16  # reference recordings in one request
MAX_REFERENCE_SECONDS = classifier.MAX_REFERENCE_SECONDS  # reference audio in one request, in all: 2 minutes
REFERENCE_ADVICE = "5 to 60 s of everyday speech in all is plenty"  # what a refused reference upload is told
MAX_CALIBRATION_SECONDS = 60.0  # the demo's calibration step: a reading's first minute is used, the rest never decoded
MAX_RECORDINGS = 16  # recordings of the speaker in one POST /v1/voice (together at most MAX_SECONDS)
MAX_VOICE_BYTES = 256 * 2**10  # largest saved voice a request or stream may send (one is 50 to 140 kB)
OTHER_PARTS = 2  # parts of an upload besides its references: the recording, and the voice
LIGHT_SECONDS = 30.0  # a request that judges more audio than this takes the heavy lane
ANALYSIS_SLOTS = 2  # recordings analysed at once by a server (each uses every core for long ones)
MAX_WAITING = 64  # requests that may wait for a slot; one more gets 503
MAX_WAIT_SECONDS = 30.0  # a request waiting longer than this for a slot gets 503
RETRY_AFTER_SECONDS = 5  # what a 503 tells the client to wait
MAX_STREAMS = 64  # live streams served at once (each costs about 1% of a core); one more is refused
MAX_STREAM_SECONDS = 3600.0  # longest live stream: an hour, of audio and of connection
MAX_MESSAGE_BYTES = 128 * 2**10  # largest audio message of a stream: 4 s at 16 kHz, 1.4 s at 48 kHz
STREAM_SPEED = 10.0  # a stream's audio may arrive at most this many times faster than real time...
STREAM_HEAD_START_SECONDS = 30.0  # ...after this much of it, which may come at once (a network's hiccups)
STREAM_IDLE_SECONDS = 30.0  # a stream that sends nothing for this long is closed


@dataclass(frozen=True)
class Limits:
    """The bounds a server puts on each request; every field is configurable per server."""

    max_seconds: float = MAX_SECONDS
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_windows: int = MAX_WINDOWS
    max_references: int = MAX_REFERENCES
    max_reference_seconds: float = MAX_REFERENCE_SECONDS
    max_recordings: int = MAX_RECORDINGS
    max_voice_bytes: int = MAX_VOICE_BYTES
    light_seconds: float = LIGHT_SECONDS
    slots: int = ANALYSIS_SLOTS
    max_waiting: int = MAX_WAITING
    max_wait_seconds: float = MAX_WAIT_SECONDS
    max_streams: int = MAX_STREAMS
    max_stream_seconds: float = MAX_STREAM_SECONDS
    max_message_bytes: int = MAX_MESSAGE_BYTES
    stream_speed: float = STREAM_SPEED
    stream_head_start_seconds: float = STREAM_HEAD_START_SECONDS
    stream_idle_seconds: float = STREAM_IDLE_SECONDS

    def __post_init__(self) -> None:
        positive = (
            "max_seconds",
            "max_upload_bytes",
            "max_windows",
            "max_reference_seconds",
            "max_voice_bytes",
            "light_seconds",
        )
        streams = ("max_streams", "max_stream_seconds", "max_message_bytes", "stream_idle_seconds")
        for name in (*positive, "slots", "max_wait_seconds", *streams):
            if not getattr(self, name) > 0:
                raise ParameterError(f"The limit {name} must be positive.")
        for name in ("max_waiting", "max_references", "max_recordings"):
            if getattr(self, name) < 0:
                raise ParameterError(f"The limit {name} cannot be negative.")
        if not self.stream_speed >= 1:
            raise ParameterError("The limit stream_speed must be at least 1 (real time).")
        if self.stream_head_start_seconds < 0:
            raise ParameterError("The limit stream_head_start_seconds cannot be negative.")

    @property
    def max_parts(self) -> int:
        """Parts one multipart upload to an analysis may have: the recording, the references and the voice."""
        return self.max_references + OTHER_PARTS

    def too_many_parts(self) -> str:
        """The sentence for an upload with more than :attr:`max_parts` parts."""
        return (
            f"This upload has more than {self.max_parts} parts; send the recording in 'file' "
            f"and at most {self.max_references} recordings in 'reference'."
        )

    @property
    def max_voice_parts(self) -> int:
        """Parts one ``POST /v1/voice`` upload may have: the recordings, the references and the voice."""
        return self.max_recordings + self.max_references + 1

    def too_many_voice_parts(self) -> str:
        """The sentence for a ``POST /v1/voice`` upload with more than :attr:`max_voice_parts` parts."""
        return (
            f"This upload has more than {self.max_voice_parts} parts; send at most {self.max_recordings} "
            f"recordings in 'recording', {self.max_references} in 'reference' and one saved voice in 'voice'."
        )

    def check_recordings(self, count: int) -> None:
        """Refuse more than ``max_recordings`` recordings in one request."""
        if count > self.max_recordings:
            raise ParameterError(
                f"This request has {count} recordings, more than the {self.max_recordings} allowed; "
                "send the rest in another request with the voice this one answers."
            )

    def recordings_too_long(self, seconds: float | None = None) -> AudioError:
        """The refusal of recordings over ``max_seconds`` in all (``seconds``: as the headers state
        it; ``None`` when decoding passed the limit)."""
        lasts = "last more than" if seconds is None else f"last {seconds:.0f} s, more than"
        return AudioError(
            f"The recordings {lasts} the {self.max_seconds:g} s allowed in all; "
            "send the rest in another request with the voice this one answers."
        )

    def voice_too_large(self, size: int | None = None) -> str:
        """The sentence for a saved voice over ``max_voice_bytes`` (``size`` in bytes, when known)."""
        what = "The voice sent" if size is None else f"The voice sent ({size / 1024:.0f} kB)"
        return (
            f"{what} is larger than the {self.max_voice_bytes / 1024:g} kB allowed; "
            "send the voice that POST /v1/voice answered, unchanged."
        )

    def check_references(self, count: int) -> None:
        """Refuse more than ``max_references`` reference recordings in one request."""
        if count > self.max_references:
            raise ParameterError(
                f"This request has {count} reference recordings, more than the {self.max_references} allowed; "
                f"send at most {self.max_references}: {REFERENCE_ADVICE}."
            )

    def references_too_long(self, seconds: float | None = None) -> AudioError:
        """The refusal of reference audio over ``max_reference_seconds`` in all (``seconds``: as
        the headers state it; ``None`` when decoding passed the limit)."""
        lasts = "lasts more than" if seconds is None else f"lasts {seconds:.0f} s, more than"
        return AudioError(
            f"The reference audio {lasts} the {self.max_reference_seconds:g} s allowed; {REFERENCE_ADVICE}."
        )

    def check_windows(self, seconds: float, window: float, hop: float) -> None:
        """Refuse a timeline of ``seconds`` that would have more than ``max_windows`` windows."""
        count = _window_count(seconds, window, hop)
        if count > self.max_windows:
            shortest = (seconds - window) / (self.max_windows - 1) if self.max_windows > 1 else seconds
            raise ParameterError(
                f"This timeline would have about {count:.0f} windows, more than the {self.max_windows} allowed here; "
                f"use a hop of at least {math.ceil(shortest * 100) / 100:.2f} s or a shorter recording."
            )


LIMITS = Limits()


def _window_count(seconds: float, window: float, hop: float) -> float:
    return 1 + max(0.0, seconds - window) / hop


class Heavier(Exception):
    """Raised in the light lane once the audio decoded is more than the headers said: the request
    is to be run again in the heavy lane. Never reaches a client."""


class Budget:
    """What one request asks a server to judge, in seconds of audio, held to the server's limits.

    Before the request waits for a slot, :meth:`add_recording` and :meth:`add_reference` read
    each upload's header (:func:`ser_core.audio.probe`, nothing decoded) and refuse, with one
    sentence, the first that passes a limit; :attr:`heavy` then chooses the lane. A route calls
    :meth:`for_timeline` first when it judges windows.

    While the request runs, :meth:`start` says in which lane and with which stop event, and
    :meth:`load` and :meth:`load_references` decode within the budget: in the heavy lane within
    the limits, in the light lane within ``light_seconds`` of audio in all, beyond which they
    raise :class:`Heavier` (a header that lied or said nothing). Decoding stops at the next block
    once the stop event is set.
    """

    def __init__(
        self,
        limits: Limits = LIMITS,
        *,
        references: int = 0,
        recordings: int = 1,
        clip_seconds: float = audio.CLIP_SECONDS,
    ) -> None:
        limits.check_references(references)
        limits.check_recordings(recordings)
        self.limits = limits
        self.clip_seconds = clip_seconds
        self.recording = 0.0  # seconds the recordings' headers state, in all (those that say)
        self.references = 0.0  # seconds the reference headers state, in all (those that say)
        self.timeline: tuple[float, float] | None = None  # (window, hop) when windows are judged
        self.stop: threading.Event | None = None
        self.heavy_lane = True
        self._decoded = 0  # samples decoded in this run
        self._recorded = 0  # samples of the recordings decoded in this run

    # ------------------------------------------------------------ from headers, before any wait

    def for_timeline(self, window: float, hop: float) -> None:
        """The request judges windows of ``window`` seconds every ``hop`` seconds."""
        self.timeline = (window, hop)

    def add_recording(self, path: str | os.PathLike[str]) -> None:
        """Count a recording from its header; refuse it if it is over a limit, or once the
        recordings pass ``max_seconds`` in all."""
        seconds = audio.probe(path, max_seconds=self.limits.max_seconds)
        if seconds is None:
            return  # bounded while it is decoded
        self.recording += seconds
        if self.recording > self.limits.max_seconds:
            raise self.limits.recordings_too_long(self.recording)
        if self.timeline is not None:
            self.limits.check_windows(seconds, *self.timeline)

    def add_reference(self, path: str | os.PathLike[str]) -> None:
        """Count one reference recording from its header; refuse once they pass the limit in all."""
        seconds = audio.probe(path)
        if seconds is None:
            return  # bounded while it is decoded
        self.references += seconds
        if self.references > self.limits.max_reference_seconds:
            raise self.limits.references_too_long(self.references)

    @property
    def seconds(self) -> float:
        """Seconds of audio the request judges, as its headers state: the recording (a timeline's
        windows each count their length, one clip at least) plus every reference."""
        return self._judged(self.recording) + self.references

    @property
    def heavy(self) -> bool:
        """Whether the request takes the heavy lane: it judges more than ``light_seconds``."""
        return self.seconds > self.limits.light_seconds

    def _judged(self, seconds: float) -> float:
        if self.timeline is None:
            return seconds
        window, hop = self.timeline
        return _window_count(seconds, window, hop) * max(window, self.clip_seconds)

    # ------------------------------------------------------------ while the request runs

    def start(self, stop: threading.Event | None = None, *, heavy: bool = True) -> Budget:
        """Begin a run of the request in the heavy or light lane, stopped by ``stop``."""
        self.stop, self.heavy_lane, self._decoded, self._recorded = stop, heavy, 0, 0
        return self

    def load(self, path: str | os.PathLike[str]) -> np.ndarray:
        """A recording as one mono 16 kHz signal, refused over ``max_seconds`` (the recordings
        loaded before it included; and for a timeline, over ``max_windows``) as soon as decoding
        shows it."""
        limit = int(self.limits.max_seconds * audio.SAMPLE_RATE) - self._recorded
        light = self._light_left()
        blocks, over = audio.take(self._blocks(path, self.limits.max_seconds), min(limit, light))
        if over:
            if light < limit:
                raise Heavier()
            raise self.limits.recordings_too_long() if self._recorded else audio.too_long(path, self.limits.max_seconds)
        y = np.concatenate(blocks)
        self._decoded += y.size
        self._recorded += y.size
        if self.timeline is not None:
            seconds = y.size / audio.SAMPLE_RATE
            self.limits.check_windows(seconds, *self.timeline)
            if not self.heavy_lane and self._judged(seconds) > self.limits.light_seconds:
                raise Heavier()
        return y

    def load_references(self, paths: Iterable[str | os.PathLike[str]]) -> list[np.ndarray]:
        """The reference recordings as mono 16 kHz signals, refused once they pass
        ``max_reference_seconds`` in all."""
        signals: list[np.ndarray] = []
        left = int(self.limits.max_reference_seconds * audio.SAMPLE_RATE)
        for path in paths:
            light = self._light_left()
            blocks, over = audio.take(self._blocks(path), min(left, light))
            if over:
                raise Heavier() if light < left else self.limits.references_too_long()
            signals.append(np.concatenate(blocks))
            left -= signals[-1].size
            self._decoded += signals[-1].size
        return signals

    def _light_left(self) -> int:
        """Samples this run may still decode: unbounded in the heavy lane."""
        if self.heavy_lane:
            return np.iinfo(np.int64).max
        return max(0, int(self.limits.light_seconds * audio.SAMPLE_RATE) - self._decoded)

    def _blocks(self, path: str | os.PathLike[str], max_seconds: float | None = None) -> Iterator[np.ndarray]:
        """The file's blocks (:func:`ser_core.audio.stream`), until the stop event is set."""
        if self.stop is not None and self.stop.is_set():
            raise Cancelled()
        for block in audio.stream(path, max_seconds=max_seconds):
            if self.stop is not None and self.stop.is_set():
                raise Cancelled()
            yield block
