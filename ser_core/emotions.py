"""The emotions this project recognises: the class vocabulary, defined once."""

from __future__ import annotations

__all__ = ["EMOTIONS", "NEUTRAL"]

EMOTIONS = ("neutral", "calm", "happy", "angry", "fearful", "disgust", "surprised")  # the classes, in output order
NEUTRAL = "neutral"  # a speaker's everyday voice: what references are, and the one class without intensity
