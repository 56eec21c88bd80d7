"""The client of ``GET /v1/stream``: send a recording as a live stream, read the verdicts as they come.

:class:`StreamClient` sends a file (decoded and resampled to 16 kHz, as every input) or an array
at its own rate, at the pace it would be recorded (or, with ``fast``, as fast as the server
allows, which its ``ready`` event says), and yields every event the server sends. It is what
``python -m ser_core stream``, the tests and ``benchmarks/bench_stream.py`` use. :func:`collect`
runs it to the end from code that is not asynchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from .. import audio
from ..errors import BusyError, ParameterError, SERError
from ..inference import Voice
from .stream import MAX_RATE, MIN_RATE, STREAM_PATH

__all__ = ["StreamClient", "StreamFailed", "collect", "stream_url", "CHUNK_SECONDS"]

CHUNK_SECONDS = 0.05  # real-time pace: a message every 50 ms, as a microphone's driver would send
FAST_CHUNK_SECONDS = 1.0  # fast: a second a message (or the server's largest message, if smaller)
FAST_SHARE = 0.9  # fast: keep to this share of the speed the server allows
OPEN_TIMEOUT = 10.0  # seconds to connect and be told the stream is ready
MAX_EVENT_BYTES = 2**20  # the largest event accepted from a server (an utterance is about 400 bytes)
SENT_KEPT = 1024  # messages whose sending time is kept (:meth:`StreamClient.sent_at`): 51 s at real-time pace


class StreamFailed(SERError):
    """The stream could not be opened, or the server went away before it was done."""


def stream_url(url: str, *, rate: int, detector: str | None = None) -> str:
    """The WebSocket address of a server's stream: ``http://host:8000`` or ``ws://host:8000/v1/stream``,
    with the query that states ``rate`` and ``detector``."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ParameterError(f"'{url}' is not a server address; give one like http://127.0.0.1:8000.")
    path = parts.path if parts.path.rstrip("/") else STREAM_PATH
    query = {"rate": rate, **({"detector": detector} if detector else {})}
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def _pcm(y: np.ndarray) -> bytes:
    """Float samples as 16-bit little-endian PCM (exact for audio that was 16-bit to begin with)."""
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2").tobytes()


def _chunks(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The blocks regrouped into pieces of ``size`` samples (the last may be shorter)."""
    rest = np.zeros(0, np.float32)
    for block in blocks:
        rest = np.concatenate([rest, block])
        whole = rest.size // size * size
        for i in range(0, whole, size):
            yield rest[i : i + size]
        rest = rest[whole:]
    if rest.size:
        yield rest


class StreamClient:
    """One stream to ``url`` (a server or its stream address), with ``detector`` (default: the
    server's) and a speaker's ``voice`` sent first when one is given.

    ``fast`` sends as fast as the server allows instead of at the pace of recording;
    ``chunk_seconds`` is the audio in each message at that pace. :attr:`started` is the
    ``time.monotonic()`` at which the stream's second 0 was recorded, so an event about second
    ``t`` could at best have come at ``started + t``; :meth:`sent_at` says when second ``t`` was
    actually sent, and :attr:`late` how far behind its pace the client has fallen at most.
    """

    def __init__(
        self,
        url: str,
        *,
        detector: str | None = None,
        voice: Voice | None = None,
        fast: bool = False,
        chunk_seconds: float = CHUNK_SECONDS,
        open_timeout: float = OPEN_TIMEOUT,
    ) -> None:
        if not chunk_seconds > 0:
            raise ParameterError("chunk_seconds must be positive.")
        stream_url(url, rate=audio.SAMPLE_RATE)  # refuses an unusable address now
        self.url = url
        self.detector = detector
        self.voice = voice
        self.fast = fast
        self.chunk_seconds = chunk_seconds
        self.open_timeout = open_timeout
        self.started: float | None = None
        self.sent_seconds = 0.0
        self.late = 0.0  # the most a message was sent after it was due, seconds
        self._sent: deque[tuple[float, float]] = deque(maxlen=SENT_KEPT)  # (seconds sent, when)

    def sent_at(self, seconds: float) -> float | None:
        """The ``time.monotonic()`` at which the audio up to ``seconds`` of the stream had been sent
        (``None`` when that is not sent yet, or too long ago to be kept)."""
        for upto, when in self._sent:
            if upto >= seconds:
                return when
        return None

    async def events(
        self, source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None = None
    ) -> AsyncIterator[dict]:
        """Stream ``source`` (a file, or samples at ``sample_rate``, sent at that rate) and yield each
        event the server sends, from ``ready`` to ``done`` or ``error``.

        Raises :class:`~ser_core.errors.AudioError` for a file that cannot be decoded (before
        connecting, or after the verdicts of what was sent), :class:`~ser_core.errors.BusyError`
        when the server is full, :class:`~ser_core.errors.ParameterError` for parameters it refuses,
        and :class:`StreamFailed` when it cannot be reached or goes away.
        """
        blocks, rate = _source(source, sample_rate)
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        except ImportError:
            raise ParameterError("The stream client needs the websockets package; pip install websockets.") from None
        url = stream_url(self.url, rate=rate, detector=self.detector)
        try:
            websocket = await connect(
                url, compression=None, open_timeout=self.open_timeout, max_size=MAX_EVENT_BYTES, proxy=None
            )
        except InvalidStatus as e:
            raise _refused(e.response) from None
        except (OSError, TimeoutError, WebSocketException) as e:
            raise StreamFailed(
                f"Could not open a stream at {url} ({_why(e)}); check the address and that the server runs."
            ) from None
        failure: list[SERError] = []
        async with websocket:
            try:
                ready = json.loads(await asyncio.wait_for(websocket.recv(), self.open_timeout))
            except (ConnectionClosed, TimeoutError, ValueError) as e:
                raise StreamFailed(f"The server at {url} did not start the stream ({_why(e)}).") from None
            yield ready
            if ready.get("type") != "ready":
                return
            sender = asyncio.create_task(self._send(websocket, blocks, rate, ready, failure))
            try:
                while True:
                    try:
                        event = json.loads(await websocket.recv())
                    except ConnectionClosed as e:
                        raise StreamFailed(
                            f"The server closed the stream before it was done ({_why(e)}); try again."
                        ) from None
                    yield event
                    if event.get("type") in ("done", "error"):
                        break
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        if failure:
            raise failure[0]

    async def _send(
        self, websocket: object, blocks: Iterable[np.ndarray], rate: int, ready: dict, failure: list[SERError]
    ) -> None:
        """The voice, then the audio at the chosen pace, then ``end``; a decoding failure ends the
        stream early (its verdicts come back first) and is raised by :meth:`events` afterwards."""
        limits = ready.get("limits", {})
        if self.voice is not None:
            await websocket.send(json.dumps({"type": "voice", "voice": self.voice.to_dict()}))
        if self.fast:
            largest = int(limits.get("max_message_bytes", 2**16)) // 2
            size = max(1, min(int(FAST_CHUNK_SECONDS * rate), largest))
        else:
            size = max(1, int(round(self.chunk_seconds * rate)))
        speed = float(limits.get("speed", 1.0))
        head_start = float(limits.get("head_start_seconds", 0.0))
        self.started = opened = time.monotonic()
        sent = 0
        try:
            for chunk in _chunks(blocks, size):
                after = (sent + chunk.size) / rate
                if self.fast:  # allowed: head_start + speed * elapsed; keep to FAST_SHARE of it
                    due = opened + max(0.0, (after / FAST_SHARE - head_start) / speed)
                else:
                    due = self.started + after  # a piece can be sent once it has been recorded
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await websocket.send(_pcm(chunk))
                now = time.monotonic()
                self.late = max(self.late, now - due)
                sent += chunk.size
                self.sent_seconds = sent / rate
                self._sent.append((self.sent_seconds, now))
        except SERError as e:
            failure.append(e)
        await websocket.send(json.dumps({"type": "end"}))


def _source(source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None) -> tuple[Iterable[np.ndarray], int]:
    """``(blocks, rate)``: a file decoded to 16 kHz block by block (its first block now, so an
    unreadable file fails before connecting), or an array as it is, at ``sample_rate``."""
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            raise ParameterError("Pass sample_rate only with an array; a file states its own rate.")
        decoded = audio.stream(Path(source))
        first = next(decoded)
        return _chain(first, decoded), audio.SAMPLE_RATE
    if sample_rate is None:
        raise ParameterError("An array needs its sample_rate, for example 16000.")
    rate = audio.validate_sample_rate(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ParameterError(f"A stream is sent at {MIN_RATE} to {MAX_RATE} Hz; resample the audio first.")
    return [audio.validate_signal(audio.to_mono(audio.as_float(source)))], rate


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _refused(response: object) -> SERError:
    """The error of a refused handshake, in the server's own sentence."""
    status = getattr(response, "status_code", 0)
    try:
        message = json.loads(getattr(response, "body", b"") or b"{}")["error"]
    except (ValueError, KeyError, TypeError):
        message = f"The server refused the stream (HTTP {status}); check the address."
    if status == 503:
        return BusyError(message)
    if status == 422:
        return ParameterError(message)
    return StreamFailed(message)


def _why(error: BaseException) -> str:
    return str(error) or type(error).__name__


def collect(
    url: str, source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None = None, **options
) -> list[dict]:
    """Every event of streaming ``source`` to ``url`` (:class:`StreamClient` ``options``), for code
    that is not asynchronous."""
    client = StreamClient(url, **options)

    async def run() -> list[dict]:
        return [event async for event in client.events(source, sample_rate)]

    return asyncio.run(run())
