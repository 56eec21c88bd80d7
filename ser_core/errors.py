"""The library's error types: one root, one subclass per kind of problem.

Every message is one sentence that says what is wrong and what to do about it, so the
command line and the demo can show it to a person as it is.
"""

from __future__ import annotations

__all__ = ["SERError", "AudioError", "NotAudioError", "ArtifactError", "ParameterError", "BusyError", "Cancelled"]


class SERError(Exception):
    """Root of every error this library raises on purpose."""


class AudioError(SERError):
    """The audio cannot be decoded or is unusable (silent, too short, not finite...)."""


class NotAudioError(AudioError):
    """The input is not audio in any format the decoders know (a text, an image, random bytes)."""


class ArtifactError(SERError):
    """A model bundle is missing, corrupt, tampered with or inconsistent."""


class ParameterError(SERError):
    """An argument is outside what the library accepts."""


class BusyError(SERError):
    """A server has no room for the request now; the client should try again later."""

    def __init__(self, message: str = "The server is busy with other recordings; try again in a few seconds.") -> None:
        super().__init__(message)


class Cancelled(SERError):
    """The work was stopped before it finished: its client left, or the server is stopping."""

    def __init__(self, message: str = "The analysis was stopped before it finished.") -> None:
        super().__init__(message)
