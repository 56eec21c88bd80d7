"""The library's error types: one root, one subclass per kind of problem.

Every message is one sentence that says what is wrong and what to do about it, so the
command line and the demo can show it to a person as it is.
"""

from __future__ import annotations

__all__ = ["SERError", "AudioError", "ArtifactError", "ParameterError"]


class SERError(Exception):
    """Root of every error this library raises on purpose."""


class AudioError(SERError):
    """The audio cannot be decoded or is unusable (silent, too short, not finite...)."""


class ArtifactError(SERError):
    """A model bundle is missing, corrupt, tampered with or inconsistent."""


class ParameterError(SERError):
    """An argument is outside what the library accepts."""
