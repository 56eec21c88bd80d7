"""Live analysis: audio that arrives a block at a time, and a verdict per utterance as soon as it ends.

:class:`Listener` is the one place where live audio becomes utterance verdicts: the
:class:`~ser_core.inference.utterances.Segmenter` finds each utterance as it ends (the rules of
``timeline --segments``, the same implementation) and the classifier judges it exactly as
``predict`` judges a recording. The WebSocket stream and the demo's live tab both use it.

``GET /v1/stream`` is that over a WebSocket, on the REST server (:data:`PROTOCOL` is its
description, served in the OpenAPI document). :class:`StreamSession` is the protocol of one
stream without any networking: bytes and text in, events (dicts) out, :class:`StreamError` with a
WebSocket close code for input it refuses. :class:`Streams` serves the sessions of one app:
it refuses the handshake of a stream the server cannot take (full, stopping, bad parameters)
with an HTTP status and one sentence, enforces :class:`~ser_core.serve.limits.Limits`, and
forgets a session the moment its client leaves. Each message's work runs on the event loop,
between messages: it is small (a fraction of a millisecond for 50 ms of audio, a few
milliseconds for a verdict), and handing it to a thread costs more than the work: with 50
streams the server needed 59-75% of a core instead of 43-48% (load average 3-4), and on a
loaded machine the streams queued for the interpreter lock (p95 latency 4.1 s against 0.42 s
on the loop, load average about 10). ``benchmarks/bench_stream.py`` measures it.
A session holds at most one utterance of audio (about 10 s), whatever the stream's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import audio
from ..errors import AudioError, ParameterError, SERError
from ..inference import EmotionClassifier, Voice, Window
from ..inference.classifier import Heard
from ..inference.utterances import DEFAULT_DETECTOR, DETECTORS, Segmentation, Segmenter
from ..inference.voice import adapted
from .limits import LIMITS, RETRY_AFTER_SECONDS, Limits

__all__ = [
    "Listener",
    "StreamSession",
    "StreamError",
    "Streams",
    "PROTOCOL",
    "STREAM_PATH",
    "MIN_RATE",
    "MAX_RATE",
    "DEFAULT_RATE",
    "LEVEL_SECONDS",
    "stream_options",
]

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/stream"
MIN_RATE, MAX_RATE = 8_000, 48_000  # Hz a client may send
DEFAULT_RATE = audio.SAMPLE_RATE
SAMPLE_BYTES = 2  # 16-bit little-endian PCM
LEVEL_SECONDS = 1.0  # a level event about this often (of stream time), so a client can show it is heard
STOP_SECONDS = 2.0  # when the server stops, streams get this long to be sent what they hold

CLOSE_NORMAL = 1000  # after "done"
CLOSE_UNSUPPORTED = 1003  # a text message that is not a command
CLOSE_INVALID = 1007  # a voice that cannot be used
CLOSE_POLICY = 1008  # a limit: too fast, too long, silent too long; a command out of order
CLOSE_TOO_BIG = 1009  # a message over the size limit
CLOSE_ERROR = 1011  # the server failed
CLOSE_RESTART = 1012  # the server is stopping
CLOSE_FULL = 1013  # the server is full (only when the handshake cannot be refused over HTTP)
REASON_BYTES = 120  # a close frame's reason is at most 123 bytes
STOPPING = "The server is stopping; connect again in a moment."

PROTOCOL = f"""Live analysis over a WebSocket: stream audio in, get a verdict per utterance as it ends.

Connect with `ws://HOST/v1/stream?rate=16000&detector=silero` (`rate` {MIN_RATE}-{MAX_RATE} Hz,
default {DEFAULT_RATE}; `detector` as in `POST /v1/segments`). A plain GET, as here, is answered 426.

1. The server sends `{{"type": "ready", "rate", "detector", "limits": {{...}}}}`.
2. The client may first send one text message `{{"type": "voice", "voice": {{...}}}}`, a saved `Voice`
   (what `POST /v1/voice` answers, or `Voice.to_dict()`), at most `limits.max_voice_bytes`: every
   verdict is then relative to that speaker's voice (`"adapted"` is null while it knows too little).
3. The client sends binary messages of mono 16-bit little-endian PCM at `rate`, of any size up to
   the limit.
4. The server sends `{{"type": "utterance", "start", "end", "speech", "emotion", "confidence",
   "probabilities", "intensity", "adapted"}}` as soon as each utterance ends (times in seconds from
   the start of the stream; an utterance too short to judge has `"speech": false` and no verdict),
   and `{{"type": "level", "t", "speech"}}` about once a second.
5. The client sends `{{"type": "end"}}`: the server judges the utterance in progress, sends
   `{{"type": "done", "utterances": n}}` and closes (1000).

Bad input gets `{{"type": "error", "message": sentence}}` (after the verdicts of what was received) and a close
code: {CLOSE_UNSUPPORTED} (a text message that is not a command), {CLOSE_INVALID} (a voice that does not
fit), {CLOSE_POLICY} (too fast, too long, silent too long, or a command out of order), {CLOSE_TOO_BIG}
(a message over the size limit), {CLOSE_RESTART} (the server is stopping), {CLOSE_ERROR} (a server failure).
A full or stopping server refuses the handshake with 503 and `Retry-After`; bad parameters get
422; both with `{{"error": sentence}}`."""


class StreamError(SERError):
    """Input a stream refuses: one sentence for the client, and the WebSocket close code."""

    def __init__(self, message: str, code: int, events: list[dict] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.events = events or []  # verdicts of the audio received with the refused message


# ---------------------------------------------------------------- the one place for live utterances


class Listener:
    """Live audio in, utterance verdicts out: 16 kHz blocks are fed as they arrive, and each
    utterance is judged as soon as it ends (exactly as ``predict`` judges a recording, relative
    to ``voice`` when one is given). What ``timeline --segments`` finds in the same audio.

    With ``learn`` (the demo, which learns the visitor's voice from every utterance), each
    utterance's features are computed once (:meth:`EmotionClassifier.hear`) and handed to
    ``learn``, which adds them to the speaker's voice and returns the voice to judge that
    utterance with; ``voice`` is then the one that judged the last utterance."""

    def __init__(
        self,
        classifier: EmotionClassifier,
        *,
        detector: str = DEFAULT_DETECTOR,
        voice: Voice | None = None,
        learn: Callable[[Heard], Voice | None] | None = None,
    ) -> None:
        self.classifier = classifier
        self.voice = voice
        self.learn = learn
        self.segmenter = Segmenter(Segmentation(detector=detector))
        self.heard = 0  # utterances found so far

    @property
    def seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self.segmenter.samples / audio.SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """Whether an utterance is in progress."""
        return self.segmenter.speaking

    def feed(self, y: np.ndarray) -> list[Window]:
        """Add 16 kHz mono samples ``(m,)``; the utterances that ended in them, judged."""
        return [self._judge(*found) for found in self.segmenter.feed(y)]

    def finish(self) -> list[Window]:
        """End of the audio: the utterance in progress, judged (if it holds enough speech)."""
        return [self._judge(*found) for found in self.segmenter.finish()]

    def _judge(self, start: int, samples: np.ndarray) -> Window:
        try:
            if self.learn is None:
                prediction = self.classifier.predict(samples, audio.SAMPLE_RATE, voice=self.voice)
            else:
                prediction = self.classifier.judge(*self._learned(samples))
        except AudioError:
            prediction = None  # too little speech once trimmed: a row without a verdict, as --segments has
        self.heard += 1
        sr = audio.SAMPLE_RATE
        return Window(start / sr, (start + samples.size) / sr, prediction)

    def _learned(self, samples: np.ndarray) -> tuple[Heard, Voice | None]:
        """The utterance heard once and given to ``learn`` (exactly once per utterance, even one
        that cannot be heard: it adds nothing), with the voice ``learn`` returns to judge it with."""
        try:
            heard = self.classifier.hear(samples, audio.SAMPLE_RATE)
        except AudioError as e:
            heard = Heard([], error=e)
        self.voice = self.learn(heard)
        return heard, self.voice


# ---------------------------------------------------------------- the protocol of one stream


def stream_options(query: Any) -> tuple[int, str]:
    """``(rate, detector)`` from a handshake's query parameters (others are ignored, as the REST API
    ignores them); :class:`ParameterError` for bad ones."""
    text = query.get("rate", str(DEFAULT_RATE))
    if not text.isdigit() or not MIN_RATE <= int(text) <= MAX_RATE:
        raise ParameterError(f"The rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}, not {text!r}.")
    detector = query.get("detector", DEFAULT_DETECTOR)
    if detector not in DETECTORS:
        raise ParameterError(f"Unknown voice-activity detector {detector!r}; choose one of {list(DETECTORS)}.")
    return int(text), detector


def _minutes(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} minutes"


class StreamSession:
    """One stream's protocol, without networking: :meth:`text` and :meth:`audio` take the client's
    messages and return the events to send; both raise :class:`StreamError` for input the stream
    refuses, after which :meth:`flush` gives the verdict of the utterance in progress.

    ``clock`` (seconds, monotonic) measures the stream's pace against real time.
    """

    def __init__(
        self,
        classifier: EmotionClassifier,
        limits: Limits = LIMITS,
        *,
        rate: int = DEFAULT_RATE,
        detector: str = DEFAULT_DETECTOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.classifier = classifier
        self.limits = limits
        self.rate = rate
        self.detector = detector
        self.clock = clock
        self.listener = Listener(classifier, detector=detector)
        self.opened = clock()
        self.last_message = self.opened
        self.received = 0  # samples at `rate`
        self.max_samples = int(limits.max_stream_seconds * rate)
        self.odd = b""  # a byte of a sample split across two messages
        self.next_level = LEVEL_SECONDS
        self.finished = False
        self._resampler = None
        if rate != audio.SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(
                rate, audio.SAMPLE_RATE, 1, dtype="float32", quality=audio.RESAMPLE_QUALITY
            )

    # -- events

    def ready(self) -> dict:
        """The first event: what the server took from the handshake, and the limits it will hold the stream to."""
        limits = self.limits
        return {
            "type": "ready",
            "rate": self.rate,
            "detector": self.detector,
            "limits": {
                "max_seconds": limits.max_stream_seconds,
                "max_message_bytes": limits.max_message_bytes,
                "speed": limits.stream_speed,
                "head_start_seconds": limits.stream_head_start_seconds,
                "idle_seconds": limits.stream_idle_seconds,
                "max_voice_bytes": limits.max_voice_bytes,
            },
        }

    def _utterance(self, window: Window) -> dict:
        return {"type": "utterance", **window.to_dict(), "adapted": adapted(self.listener.voice)}

    def done(self) -> dict:
        return {"type": "done", "utterances": self.listener.heard}

    @staticmethod
    def error(message: str) -> dict:
        return {"type": "error", "message": message}

    # -- messages

    def text(self, text: str) -> list[dict]:
        """A text message: a voice (first, before any audio) or the end of the stream.

        After ``{"type": "end"}`` the events end with ``done`` and :attr:`finished` is set.
        """
        limit = max(self.limits.max_message_bytes, self.limits.max_voice_bytes)
        self._arrived(len(text.encode()), limit, "a text message is a command or a saved voice")
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested beyond what the parser follows
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "end":
            events = self.flush()
            self.finished = True
            return [*events, self.done()]
        if kind == "voice":
            self._voice(message.get("voice"))
            return []
        raise StreamError(
            'A text message must be JSON with "type" "voice" (first) or "end"; send the audio as binary messages.',
            CLOSE_UNSUPPORTED,
        )

    def _voice(self, data: object) -> None:
        if self.received or self.listener.voice is not None:
            raise StreamError(
                "The voice must be the first message, before any audio; open a new stream to use one.", CLOSE_POLICY
            )
        try:
            voice = self.classifier.check_voice(Voice.from_dict(data))  # damaged, or of another model: refused
        except ParameterError as e:
            raise StreamError(str(e), CLOSE_INVALID) from None
        self.listener.voice = voice

    def audio(self, data: bytes) -> list[dict]:
        """A binary message of 16-bit little-endian PCM at :attr:`rate`: the events it completes
        (each utterance that ended in it, judged, then a level event when one is due)."""
        self._arrived(len(data), self.limits.max_message_bytes, "send the audio in smaller pieces")
        pcm = self.odd + bytes(data)
        whole = len(pcm) // SAMPLE_BYTES * SAMPLE_BYTES
        self.odd = pcm[whole:]
        samples = np.frombuffer(pcm[:whole], "<i2")
        limits = self.limits
        allowed = limits.stream_head_start_seconds + limits.stream_speed * (self.clock() - self.opened)
        if (self.received + samples.size) / self.rate > allowed:
            raise StreamError(
                f"The audio arrives more than {limits.stream_speed:g} times faster than real time; "
                "send it at the pace it is recorded.",
                CLOSE_POLICY,
            )
        over = self.received + samples.size > self.max_samples
        samples = samples[: self.max_samples - self.received]
        self.received += samples.size
        y = audio.as_float(samples)
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y)
        events = [self._utterance(w) for w in self.listener.feed(y)]
        seconds = self.listener.seconds
        if seconds >= self.next_level:
            events.append({"type": "level", "t": round(seconds, 2), "speech": self.listener.speaking})
            self.next_level = (seconds // LEVEL_SECONDS + 1) * LEVEL_SECONDS
        if over:
            raise StreamError(self._too_long(), CLOSE_POLICY, events)
        return events

    def _arrived(self, size: int, limit: int, advice: str) -> None:
        """A message of ``size`` bytes came; refused over ``limit`` with ``advice``."""
        if self.finished:
            raise StreamError("The stream has ended; open a new stream to send more.", CLOSE_POLICY)
        self.last_message = self.clock()
        if size > limit:
            raise StreamError(f"A message of {size} bytes is over the limit of {limit}; {advice}.", CLOSE_TOO_BIG)

    def _too_long(self) -> str:
        return (
            f"The stream reached its limit of {_minutes(self.limits.max_stream_seconds)}; open a new stream to go on."
        )

    def flush(self) -> list[dict]:
        """The verdict of the utterance in progress (the stream ends: nothing more will come)."""
        if self.finished:
            return []
        events = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            events = [self._utterance(w) for w in self.listener.feed(tail)]
            self._resampler = None
        return events + [self._utterance(w) for w in self.listener.finish()]

    def deadline(self) -> float:
        """The clock time by which the next message must come."""
        return min(self.last_message + self.limits.stream_idle_seconds, self.opened + self.limits.max_stream_seconds)

    def expired(self) -> StreamError:
        """Why the stream is closed at its :meth:`deadline`."""
        if self.clock() >= self.opened + self.limits.max_stream_seconds:
            return StreamError(self._too_long(), CLOSE_POLICY)
        return StreamError(
            f"Nothing arrived for {_minutes(self.limits.stream_idle_seconds)}; "
            "send audio continuously (silence too) or end the stream.",
            CLOSE_POLICY,
        )


# ---------------------------------------------------------------- the streams of a server


class Streams:
    """The live streams of one server: admission, the work off the event loop, and shutdown."""

    def __init__(self, classifier: EmotionClassifier, limits: Limits = LIMITS) -> None:
        self.classifier = classifier
        self.limits = limits
        self.active: dict[StreamSession, asyncio.Event] = {}  # each session and its stop signal
        self.stopping = False

    async def serve(self, websocket: Any) -> None:
        """One stream, from handshake to close; never raises."""
        if self.stopping:
            await _refuse(websocket, 503, STOPPING, CLOSE_RESTART)
            return
        if len(self.active) >= self.limits.max_streams:
            message = (
                f"The server is already serving {self.limits.max_streams} streams, its limit; "
                f"try again in {RETRY_AFTER_SECONDS} s."
            )
            await _refuse(websocket, 503, message, CLOSE_FULL)
            return
        try:
            rate, detector = stream_options(websocket.query_params)
            session = StreamSession(self.classifier, self.limits, rate=rate, detector=detector)
        except ParameterError as e:
            await _refuse(websocket, 422, str(e), CLOSE_POLICY)
            return
        except SERError as e:  # the detector's model is unusable: the server's fault, said in its sentence
            log.error("a stream could not start: %s", e)
            await _refuse(websocket, 500, str(e), CLOSE_ERROR)
            return
        stop = asyncio.Event()
        self.active[session] = stop  # taken before the first await, so a burst cannot pass the limit
        try:
            await websocket.accept()
            await self._session(websocket, session, stop)
        except Exception:  # the client left while events were sent: nothing more to do
            log.debug("stream ended by its client", exc_info=True)
        finally:
            del self.active[session]

    async def _session(self, websocket: Any, session: StreamSession, stop: asyncio.Event) -> None:
        await _send(websocket, [session.ready()])
        stopped = asyncio.create_task(stop.wait())
        receiving: asyncio.Task | None = None
        try:
            while True:
                if stop.is_set():  # the server is stopping (checked between messages, so none is half done)
                    await self._close(websocket, session, StreamError(STOPPING, CLOSE_RESTART))
                    return
                if receiving is None:
                    receiving = asyncio.create_task(websocket.receive())
                timeout = max(0.0, session.deadline() - session.clock())
                await asyncio.wait({receiving, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    if not stop.is_set():
                        await self._close(websocket, session, session.expired())
                        return
                    continue
                message, receiving = receiving.result(), None
                if message["type"] == "websocket.disconnect":
                    return  # the client left: the session is dropped, with everything it held
                try:
                    if message.get("bytes") is not None:
                        events = session.audio(message["bytes"])
                    else:
                        events = session.text(message.get("text") or "")
                except StreamError as e:
                    await self._close(websocket, session, e)
                    return
                await _send(websocket, events)
                if session.finished:
                    await websocket.close(CLOSE_NORMAL)
                    return
        except Exception as e:
            from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

            if isinstance(e, (WebSocketDisconnect, WebSocketDisconnected, OSError)):
                return  # the client left while it was being answered
            log.exception("a stream failed")
            failure = StreamError(
                f"The server failed ({type(e).__name__}); please report it with the audio.", CLOSE_ERROR
            )
            with contextlib.suppress(Exception):
                await self._close(websocket, session, failure)
        finally:
            stopped.cancel()
            if receiving is not None:
                receiving.cancel()

    async def _close(self, websocket: Any, session: StreamSession, error: StreamError) -> None:
        """Send what the stream still holds (the verdicts of the audio received), the error, and close."""
        events = list(error.events)
        try:
            events += session.flush()
        except Exception:
            log.exception("a stream could not be flushed")
        session.finished = True
        await _send(websocket, [*events, StreamSession.error(str(error))])
        await websocket.close(error.code, _reason(str(error)))

    async def close_all(self, timeout: float = STOP_SECONDS) -> None:
        """The server is stopping: refuse new streams, and send each open one what it holds, an
        error and close code 1012, within ``timeout`` seconds."""
        self.stopping = True
        for stop in self.active.values():
            stop.set()
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


async def _send(websocket: Any, events: list[dict]) -> None:
    for event in events:
        await websocket.send_text(json.dumps(event, ensure_ascii=False))


def _reason(message: str) -> str:
    """A close frame's reason: the message, cut to fit."""
    data = message.encode()
    return message if len(data) <= REASON_BYTES else data[: REASON_BYTES - 3].decode(errors="ignore") + "..."


async def _refuse(websocket: Any, status: int, message: str, code: int) -> None:
    """Refuse a stream at the handshake: an HTTP ``status`` with ``{"error": message}`` where the
    server can answer the upgrade so; else accept, send the error event and close with ``code``."""
    from starlette.responses import JSONResponse

    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    try:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(JSONResponse({"error": message}, status, headers))
            return
        await websocket.accept()
        await _send(websocket, [StreamSession.error(message)])
        await websocket.close(code, _reason(message))
    except Exception:
        log.debug("a refused stream left before it was told", exc_info=True)
