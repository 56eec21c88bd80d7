"""The library's error types: one root, one subclass per kind of problem.

Every message is one sentence that says what is wrong and what to do about it, so the
command line and the demo can show it to a person as it is.
"""

from __future__ import annotations

__all__ = [
    "SERError",
    "AudioError",
    "NotAudioError",
    "NoSpeechError",
    "ArtifactError",
    "ParameterError",
    "BusyError",
    "Cancelled",
    "FROM_FILE",
    "FROM_MICROPHONE",
]

FROM_FILE, FROM_MICROPHONE = "file", "microphone"  # where audio came from: it decides what NoSpeechError advises


class SERError(Exception):
    """Root of every error this library raises on purpose."""


class AudioError(SERError):
    """The audio cannot be decoded or is unusable (silent, too short, not finite...)."""


class NotAudioError(AudioError):
    """The input is not audio in any format the decoders know (a text, an image, random bytes)."""


class NoSpeechError(AudioError):
    """The audio holds nothing to judge: it is silent (``reason`` ``"silent"``), or no stretch of
    it is speech long enough (``"no speech"``).

    What to do about it depends on where the audio came from: a file calls for another file, a
    recording from the microphone for a look at the microphone. This class is the one place that
    chooses the sentence: the library words it for a file (``source`` :data:`FROM_FILE`), and an
    interface that recorded the audio asks :meth:`for_source` for the microphone's.
    """

    SENTENCES = {
        ("silent", FROM_FILE): "The audio is silent; choose a recording in which someone speaks.",
        ("silent", FROM_MICROPHONE): "The audio is silent; check the microphone and record again while speaking.",
        ("no speech", FROM_FILE): "No speech was found in the recording; choose one in which someone speaks clearly.",
        ("no speech", FROM_MICROPHONE): (
            "No speech was found in the recording; check the microphone and speak closer to it."
        ),
    }

    def __init__(self, reason: str = "no speech", source: str = FROM_FILE) -> None:
        if (reason, source) not in self.SENTENCES:
            raise ValueError(f"no sentence for {reason!r} audio from the {source!r}")
        super().__init__(self.SENTENCES[reason, source])
        self.reason = reason
        self.source = source

    def for_source(self, source: str) -> NoSpeechError:
        """The same problem, worded for audio that came from ``source`` (:data:`FROM_FILE` or :data:`FROM_MICROPHONE`)."""
        return NoSpeechError(self.reason, source)

    def __reduce__(self):  # rebuilt from its reason and source, not its sentence, across processes
        return NoSpeechError, (self.reason, self.source)


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
