"""What a verdict is: :class:`Prediction` (one emotion with its probabilities and intensity),
:class:`Window` (a stretch of a recording with its verdict), :class:`Timeline` (windows over time)
and :class:`Utterances` (one window an utterance), :class:`Overall` (what a person would say of a
whole recording from its windows or utterances), and :func:`result_row`, the one function that
turns a verdict into the row every interface prints, writes or sends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import AudioError, NoSpeechError
from .intensity import NO_INTENSITY, Intensity
from .utterances import DEFAULT_DETECTOR
from .voice import Voice, adapted

__all__ = ["Prediction", "Window", "Timeline", "Utterances", "Overall", "MAJORITY", "result_row"]

MAJORITY = 0.5  # an emotion is a whole recording's when its windows or utterances carry it more often than this


@dataclass(frozen=True)
class Prediction:
    """A verdict: the winning emotion, its probability, and all class probabilities.

    ``strength`` is the intensity model's probability of strong delivery (``None`` for a bundle
    without one); :attr:`intensity` is what a verdict says of it.
    """

    emotion: str
    confidence: float
    probabilities: dict[str, float]
    strength: float | None = None

    @classmethod
    def from_probabilities(
        cls, labels: tuple[str, ...], probs: np.ndarray, strength: float | None = None
    ) -> Prediction:
        probs = np.asarray(probs, dtype=np.float64)
        probs = probs / probs.sum()
        best = int(np.argmax(probs))
        return cls(
            emotion=labels[best],
            confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(labels, probs, strict=False)},
            strength=None if strength is None else float(strength),
        )

    @classmethod
    def mean(cls, labels: tuple[str, ...], predictions: Sequence[Prediction]) -> Prediction:
        """The verdict of several clips or windows: their mean probabilities and mean strength."""
        strengths = [p.strength for p in predictions]
        return cls.from_probabilities(
            labels,
            np.mean([[p.probabilities[k] for k in labels] for p in predictions], axis=0),
            None if None in strengths else float(np.mean(strengths)),
        )

    @property
    def intensity(self) -> Intensity | None:
        """Normal or strong, and the strength; ``None`` for a neutral verdict (the data has no
        strong neutral to learn from) or without an intensity model."""
        if self.strength is None or self.emotion in NO_INTENSITY:
            return None
        return Intensity.from_strength(self.strength)

    def to_dict(self) -> dict:
        intensity = self.intensity
        return {
            "emotion": self.emotion,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
            "intensity": None if intensity is None else intensity.to_dict(),
        }


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
class Overall:
    """What a person would say of a whole recording, from the verdicts of its windows or utterances.

    The rule (:meth:`Timeline.overall`): count the spans with speech that each emotion wins. An
    emotion carried by more than half of them (:data:`MAJORITY`) is the recording's; otherwise the
    recording is *mixed*, and the counts say what it mixes. Counting verdicts, not averaging
    probabilities, is what a listener does: seven utterances carrying seven different emotions
    are "mixed", where the mean of their probabilities names one emotion at 19%, which nobody
    heard. Every count can be checked against the rows printed above it.

    ``emotion`` is ``None`` when mixed; ``counts`` holds the emotions that won any span, most
    first (ties in label order); ``intensity`` is that of the emotion's own spans (their mean
    strength), ``None`` when mixed, for an emotion without intensity, or without an intensity model.
    """

    emotion: str | None
    counts: dict[str, int]
    spans: int
    unit: tuple[str, str] = ("window with speech", "windows with speech")  # what a span is: one, several
    intensity: Intensity | None = None

    @property
    def mixed(self) -> bool:
        return self.emotion is None

    def describe(self) -> str:
        """The verdict in words: ``"angry in 5 of 7 utterances (also calm 2), normal (20% chance of
        strong)"``, ``"angry in all 3 utterances"``, or ``"mixed: no emotion in more than half of
        the 7 utterances (angry 3, calm 2, happy 2)"``."""
        one, several = self.unit
        if self.emotion is None:
            tally = ", ".join(f"{emotion} {count}" for emotion, count in self.counts.items())
            return f"mixed: no emotion in more than half of the {self.spans} {several} ({tally})"
        won = self.counts[self.emotion]
        if self.spans == 1:
            text = f"{self.emotion} in its one {one}"
        elif won == self.spans:
            text = f"{self.emotion} in all {won} {several}"
        else:
            others = ", ".join(f"{e} {c}" for e, c in self.counts.items() if e != self.emotion)
            text = f"{self.emotion} in {won} of {self.spans} {several} (also {others})"
        return text if self.intensity is None else f"{text}, {self.intensity.text}"


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
            raise NoSpeechError()
        return Prediction.mean(self.labels, [w.prediction for w in voiced])

    def overall(self) -> Overall:
        """What a person would say of the whole recording (:class:`Overall`: the emotion of more
        than half of the windows with speech, or mixed); raises :class:`AudioError` when none has any."""
        voiced = self.voiced
        if not voiced:
            raise NoSpeechError()
        counts = {label: 0 for label in self.labels}
        for w in voiced:
            counts[w.prediction.emotion] += 1
        ranked = dict(sorted(((e, c) for e, c in counts.items() if c), key=lambda ec: -ec[1]))  # stable: label order
        emotion, won = next(iter(ranked.items()))
        if won <= MAJORITY * len(voiced):
            return Overall(None, ranked, len(voiced), self.unit)
        strengths = [w.prediction.strength for w in voiced if w.prediction.emotion == emotion]
        intensity = None
        if emotion not in NO_INTENSITY and None not in strengths:
            intensity = Intensity.from_strength(float(np.mean(strengths)))
        return Overall(emotion, ranked, len(voiced), self.unit, intensity)

    @property
    def unit(self) -> tuple[str, str]:
        """What a span with speech is called: one, several."""
        return ("window with speech", "windows with speech")

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
        """One row a window: start, end, speech, emotion, confidence, the intensity level and
        strength (empty without one), then each probability."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["start", "end", "speech", "emotion", "confidence", "intensity", "strength", *self.labels])
        for w in self.windows:
            p = w.prediction
            if p is None:
                writer.writerow([f"{w.start:.3f}", f"{w.end:.3f}", 0, "", "", "", "", *[""] * len(self.labels)])
            else:
                writer.writerow(
                    [
                        f"{w.start:.3f}",
                        f"{w.end:.3f}",
                        1,
                        p.emotion,
                        f"{p.confidence:.4f}",
                        *([p.intensity.level, f"{p.intensity.strength:.4f}"] if p.intensity else ["", ""]),
                        *[f"{p.probabilities[k]:.4f}" for k in self.labels],
                    ]
                )
        return buffer.getvalue()


@dataclass(frozen=True)
class Utterances(Timeline):
    """Emotion per utterance (:meth:`EmotionClassifier.segments`): a timeline whose windows are the
    utterances, of their own lengths (``window_seconds`` and ``hop_seconds`` are 0), with the
    voice-activity detector that found them. CSV as the timeline's, one row an utterance."""

    detector: str = DEFAULT_DETECTOR

    @property
    def unit(self) -> tuple[str, str]:
        return ("utterance", "utterances")

    def to_dict(self) -> dict:
        out = super().to_dict()
        del out["window"], out["hop"]
        rows = out.pop("windows")
        return {**out, "detector": self.detector, "utterances": rows}


def result_row(verdict: Prediction | Timeline, voice: Voice | None, path: str | None = None) -> dict:
    """The row of one recording as ``predict --json``, ``timeline --json``, the REST API, the batch
    reports and the demo's API give it: ``{"path", ...the verdict..., "adapted"}`` (no ``"path"``
    without one)."""
    return {**({} if path is None else {"path": path}), **verdict.to_dict(), "adapted": adapted(voice)}
