"""What one request may ask of a server: the limits the REST API and the demo share, defined once.

The command line reads recordings of any length (it runs on its owner's machine); the servers
refuse, with one sentence, anything longer than :data:`MAX_SECONDS` as soon as the file's header
or its decoding shows it, uploads over :data:`MAX_UPLOAD_BYTES` while they arrive, and
timelines of more than :data:`MAX_WINDOWS` windows before any of them is judged.

A live stream (``GET /v1/stream``) is bounded the same way: at most :data:`MAX_STREAMS` at once
(one more is refused at the handshake), each at most :data:`MAX_STREAM_SECONDS` long, in messages
of at most :data:`MAX_MESSAGE_BYTES`, its audio arriving at most :data:`STREAM_SPEED` times faster
than real time after a head start of :data:`STREAM_HEAD_START_SECONDS`, and closed after
:data:`STREAM_IDLE_SECONDS` without a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ParameterError

__all__ = [
    "Limits",
    "LIMITS",
    "MAX_SECONDS",
    "MAX_UPLOAD_BYTES",
    "MAX_WINDOWS",
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
        for name in ("max_seconds", "max_upload_bytes", "max_windows", "slots", "max_wait_seconds"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"The limit {name} must be positive.")
        if self.max_waiting < 0:
            raise ParameterError("The limit max_waiting cannot be negative.")
        for name in ("max_streams", "max_stream_seconds", "max_message_bytes", "stream_idle_seconds"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"The limit {name} must be positive.")
        if not self.stream_speed >= 1:
            raise ParameterError("The limit stream_speed must be at least 1 (real time).")
        if self.stream_head_start_seconds < 0:
            raise ParameterError("The limit stream_head_start_seconds cannot be negative.")

    def check_windows(self, seconds: float, window: float, hop: float) -> None:
        """Refuse a timeline of ``seconds`` that would have more than ``max_windows`` windows."""
        count = 1 + max(0.0, seconds - window) / hop
        if count > self.max_windows:
            shortest = (seconds - window) / (self.max_windows - 1) if self.max_windows > 1 else seconds
            raise ParameterError(
                f"This timeline would have about {count:.0f} windows, more than the {self.max_windows} allowed here; "
                f"use a hop of at least {math.ceil(shortest * 100) / 100:.2f} s or a shorter recording."
            )


LIMITS = Limits()
