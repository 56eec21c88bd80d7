"""Speaker adaptation: a :class:`Voice` is what is known of one speaker's voice, and
:class:`Population` turns it into the statistics that normalise their clips.

The words, used the same way everywhere (code, JSON, command line, docs): a verdict is
*adapted* when it is judged relative to a speaker's *voice*. A voice learns from two kinds of
speech: *reference* speech, the speaker's everyday voice reading something neutral
(*calibration*: ``calibrate()``, ``--reference``, the ``reference`` upload field, the demo's
calibration step), and *same-speaker* speech, the recordings being judged, all of one speaker
(``adapt()``, ``--same-speaker``, the demo learning from every recording). A verdict's
``"adapted"`` says which one it used: ``"reference"`` when the voice has reference speech,
``"same-speaker"`` when it has only (enough) recordings, ``null`` when it was not adapted.

An emotion is a departure from a speaker's everyday voice, so the *adapted model* sees each
clip's features normalised by that speaker: ``z = (x - location) / spread``, where
``location`` estimates the speaker's neutral voice and ``spread`` how much their features vary.
Both are estimated as the training speakers were (:mod:`ser_core.training.adapted`):

- from reference clips, their mean, shrunk per feature toward the population's neutral centre by
  the empirical-Bayes weight ``n / (n + k)`` (``k``: within-speaker over between-speaker
  variance), so that one sentence moves the features on which speakers differ most (pitch
  level, timbre, channel) and leaves the noisy ones near the population; their spread, scaled
  from neutral reading to all speech and shrunk toward the population spread with weight
  ``(n - 1) / (n - 1 + 4)``;
- from a session of the speaker's own recordings, their mean less the emotional shift the
  session is heard to carry (the default model's mean probabilities, pulled halfway toward an
  even mix, times the population's per-emotion offsets), so an angry call still estimates the
  speaker's neutral voice; used only from :data:`MIN_SESSION_CLIPS` clips and
  :data:`MIN_SESSION_SECONDS` of speech, below which it costs more than it gives (measured on
  held-out speakers: ``benchmarks/voice_study``);
- with both, each estimate weighted by how much it says (the same empirical-Bayes precision).

A :class:`Voice` holds sums of features (never audio, never a recording's features one by one),
so it grows as speech comes in, serialises to JSON and back, and names the feature set it
belongs to, so a voice made with one model is never applied to another's features.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace

import numpy as np

from ..audio import CLIP_SECONDS, POOL_HOP_SECONDS
from ..errors import ParameterError

__all__ = [
    "Voice",
    "Moments",
    "Population",
    "SOURCES",
    "adapted",
    "feature_fingerprint",
    "MIN_SESSION_CLIPS",
    "MIN_SESSION_SECONDS",
    "SPREAD_SHRINK",
    "SESSION_CORRECTION",
]

VOICE_FORMAT = 2  # format 1 (a mean only, called "reference") is still read
SOURCES = ("reference", "same-speaker")  # what a voice learned from; also the verdicts' "adapted"
MIN_SESSION_CLIPS = 16  # a session of fewer clips is not adapted to (one-emotion sessions lost below it)...
MIN_SESSION_SECONDS = 30.0  # ...nor one of less speech (about 16 RAVDESS sentences)
SPREAD_SHRINK = 4.0  # reference spread: weight (n - 1) / (n - 1 + SPREAD_SHRINK) on the clips' own
SESSION_CORRECTION = 0.5  # share of the verdicts' departure from an even mix taken as the session's emotion
SPREAD_FLOOR = 1e-3  # a spread never falls below this share of the population's


def feature_fingerprint(feature_config: dict) -> str:
    """A short digest of a feature set's settings: voices carry it and are checked against it."""
    return hashlib.sha256(json.dumps(feature_config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Moments:
    """The sums that describe a set of feature rows without keeping them: count, sum and sum of
    squares (``None`` when unknown, as in voices saved before spreads were kept). ``(d,)`` float64."""

    count: int
    total: np.ndarray
    squares: np.ndarray | None = None

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        rows = np.asarray(rows, np.float64)
        return cls(len(rows), rows.sum(axis=0), np.square(rows).sum(axis=0))

    def __add__(self, other: Moments) -> Moments:
        squares = None if self.squares is None or other.squares is None else self.squares + other.squares
        return Moments(self.count + other.count, self.total + other.total, squares)

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.count

    def std(self) -> np.ndarray | None:
        """The rows' standard deviation (``ddof=1``), ``None`` from fewer than two or without squares."""
        if self.squares is None or self.count < 2:
            return None
        variance = (self.squares - self.total**2 / self.count) / (self.count - 1)
        return np.sqrt(np.maximum(variance, 0.0))

    def to_dict(self) -> dict:
        out: dict = {"count": self.count, "sum": [float(v) for v in self.total]}
        if self.squares is not None:
            out["squares"] = [float(v) for v in self.squares]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Moments:
        squares = data.get("squares")
        return cls(
            int(data["count"]),
            np.asarray(data["sum"], np.float64),
            None if squares is None else np.asarray(squares, np.float64),
        )


@dataclass(frozen=True)
class Voice:
    """What is known of one speaker's voice: sums of the features of their reference speech and
    of their session's speech, with how much of each there was. Small, and no audio.

    ``probabilities`` is the sum over the session's clips of the default model's probabilities
    (what the session is heard to carry); ``recordings`` counts the recordings the session came
    from. Build one with :meth:`EmotionClassifier.calibrate` and :meth:`EmotionClassifier.adapt`,
    which also add to an existing voice.
    """

    features: str  # feature_fingerprint of the feature set
    reference: Moments | None = None
    reference_seconds: float = 0.0
    session: Moments | None = None
    probabilities: np.ndarray | None = None  # (classes,)
    session_seconds: float = 0.0
    recordings: int = 0

    def __post_init__(self) -> None:
        for part in (self.reference, self.session):
            if part is None:
                continue
            arrays = [part.total] + ([] if part.squares is None else [part.squares])
            if part.count < 1 or any(a.ndim != 1 or not np.all(np.isfinite(a)) for a in arrays):
                raise ParameterError("A voice's sums must be finite vectors over at least one clip.")
        if (
            self.reference is not None
            and self.session is not None
            and self.reference.total.shape != self.session.total.shape
        ):
            raise ParameterError("A voice's reference and session sums must have the same length.")
        if (self.session is None) != (self.probabilities is None):
            raise ParameterError("A voice's session needs the verdicts it was heard with, and only it.")
        heard = self.probabilities
        if heard is not None and (heard.ndim != 1 or not np.all(np.isfinite(heard)) or np.any(heard < 0)):
            raise ParameterError("A voice's verdicts must be a finite, non-negative vector.")
        seconds = (self.reference_seconds, self.session_seconds)
        if not all(np.isfinite(s) and s >= 0 for s in seconds) or self.recordings < 0:
            raise ParameterError("A voice's seconds and recordings must be finite and not negative.")

    # ------------------------------------------------------------ what it knows

    @property
    def session_ready(self) -> bool:
        """Whether the session holds enough speech to adapt to (:data:`MIN_SESSION_CLIPS`,
        :data:`MIN_SESSION_SECONDS`)."""
        return (
            self.session is not None
            and self.session.count >= MIN_SESSION_CLIPS
            and self.session_seconds >= MIN_SESSION_SECONDS
        )

    @property
    def source(self) -> str | None:
        """What an adapted verdict says it used: ``"reference"``, ``"same-speaker"``, or ``None``
        while the voice has neither reference speech nor enough of a session."""
        if self.reference is not None:
            return "reference"
        return "same-speaker" if self.session_ready else None

    @property
    def seconds(self) -> float:
        return self.reference_seconds + self.session_seconds

    def describe(self) -> str:
        """A sentence for a person: how the voice was learned and whether verdicts use it yet."""
        parts = []
        if self.reference is not None:
            parts.append(f"{self.reference_seconds:.0f} s of calibration")
        if self.session is not None:
            heard = f"{self.recordings} recording{'s' if self.recordings != 1 else ''}"
            parts.append(f"{heard}, {self.session_seconds:.0f} s of speech")
        learned = " and ".join(parts) or "nothing yet"
        if self.source is None:
            return f"Learning your voice ({learned}); verdicts adapt to it after {self._more()}, or after the calibration step."
        return f"Adapted to your voice from {learned}."

    def _more(self) -> str:
        """What the session still needs, said both ways it can come: :data:`MIN_SESSION_SECONDS` of
        speech and :data:`MIN_SESSION_CLIPS` clips. A recording of up to one clip of speech is one
        clip; a longer one is about one clip a second after its first (:data:`POOL_HOP_SECONDS`), so
        speech always brings at least one clip per :data:`CLIP_SECONDS`."""
        seconds = max(0.0, MIN_SESSION_SECONDS - self.session_seconds)
        clips = max(0, MIN_SESSION_CLIPS - (0 if self.session is None else self.session.count))
        if seconds > 0 and (clips <= 1 or clips * CLIP_SECONDS <= seconds):  # the clips come with the seconds
            return f"about {math.ceil(seconds)} s more of speech"
        if seconds == 0:
            one_take = math.ceil(CLIP_SECONDS + (clips - 1) * POOL_HOP_SECONDS)
            return "1 more recording" if clips == 1 else f"{clips} more short recordings or one of about {one_take} s"
        return f"about {math.ceil(seconds)} s more of speech in {clips} more short recordings or a few longer ones"

    # ------------------------------------------------------------ growing

    def with_reference(self, rows: np.ndarray, seconds: float) -> Voice:
        """This voice with the feature rows ``(n, d)`` of more reference speech."""
        added = Moments.of(rows)
        return replace(
            self,
            reference=added if self.reference is None else self.reference + added,
            reference_seconds=self.reference_seconds + float(seconds),
        )

    def with_session(self, rows: np.ndarray, probabilities: np.ndarray, seconds: float, recordings: int = 1) -> Voice:
        """This voice with the feature rows ``(n, d)`` of more of the session, the default model's
        probabilities ``(n, classes)`` of those rows, and how many recordings they came from."""
        added, heard = Moments.of(rows), np.asarray(probabilities, np.float64).sum(axis=0)
        return replace(
            self,
            session=added if self.session is None else self.session + added,
            probabilities=heard if self.probabilities is None else self.probabilities + heard,
            session_seconds=self.session_seconds + float(seconds),
            recordings=self.recordings + int(recordings),
        )

    # ------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        out: dict = {"format": VOICE_FORMAT, "features": self.features, "source": self.source}
        if self.reference is not None:
            out["reference"] = {**self.reference.to_dict(), "seconds": round(self.reference_seconds, 3)}
        if self.session is not None:
            out["session"] = {
                **self.session.to_dict(),
                "seconds": round(self.session_seconds, 3),
                "recordings": self.recordings,
                "probabilities": [float(v) for v in self.probabilities],
            }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Voice:
        """A voice saved by :meth:`to_dict`. Voices of format 1 (before voices kept sums; their
        mean was called ``"reference"`` and later ``"mean"``) still read, as reference speech
        without a spread."""
        if not isinstance(data, dict) or data.get("format") not in (1, VOICE_FORMAT):
            raise ParameterError("This is not a saved voice of this version; calibrate again.")
        try:
            if data["format"] == 1:
                clips = int(data["clips"])
                mean = np.asarray(data["mean"] if "mean" in data else data["reference"], np.float64)
                if data.get("source", "reference") == "same-speaker":
                    raise ParameterError("A saved same-speaker voice of format 1 has no session to read; adapt again.")
                return cls(str(data["features"]), Moments(clips, mean * clips), float(data["seconds"]))
            reference, session = data.get("reference"), data.get("session")
            return cls(
                features=str(data["features"]),
                reference=None if reference is None else Moments.from_dict(reference),
                reference_seconds=0.0 if reference is None else float(reference["seconds"]),
                session=None if session is None else Moments.from_dict(session),
                probabilities=None if session is None else np.asarray(session["probabilities"], np.float64),
                session_seconds=0.0 if session is None else float(session["seconds"]),
                recordings=0 if session is None else int(session["recordings"]),
            )
        except ParameterError:
            raise
        except KeyError as e:
            raise ParameterError(
                f"The saved voice is incomplete or damaged (it has no {e} field); calibrate again."
            ) from None
        except (TypeError, ValueError, AttributeError, OverflowError):
            raise ParameterError(
                "The saved voice is incomplete or damaged (a field holds a value of the wrong kind); calibrate again."
            ) from None

    @classmethod
    def from_json(cls, text: str) -> Voice:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError):  # not JSON, or nested beyond what the parser follows
            raise ParameterError("The saved voice is not valid JSON; calibrate again.") from None


def adapted(voice: Voice | None) -> str | None:
    """What a verdict's ``"adapted"`` field says: ``"reference"``, ``"same-speaker"`` or ``None``."""
    return None if voice is None else voice.source


@dataclass(frozen=True)
class Population:
    """What the training speakers say about speakers in general (stored in the bundle), per feature:
    ``spread``, the pooled within-speaker spread; ``ratio``, a speaker's spread over all speech
    over their spread in neutral reading; ``offsets`` ``(classes, d)``, each emotion's mean shift
    from a speaker's neutral voice in units of their spread; ``centre``, the mean neutral voice;
    ``k_reference`` and ``k_session``, the within-speaker variance of neutral clips and of all
    clips over the between-speaker variance of neutral voices (the empirical-Bayes shrinkage)."""

    spread: np.ndarray
    ratio: np.ndarray
    offsets: np.ndarray
    centre: np.ndarray
    k_reference: np.ndarray
    k_session: np.ndarray

    ARRAYS = ("spread", "ratio", "offsets", "centre", "k_reference", "k_session")

    def check(self, n_features: int, n_classes: int) -> None:
        """Refuse statistics that do not fit the feature set and the classes."""
        vectors = [getattr(self, name) for name in self.ARRAYS if name != "offsets"]
        if any(v.shape != (n_features,) for v in vectors) or self.offsets.shape != (n_classes, n_features):
            raise ParameterError("the speaker statistics do not fit the features or labels")
        positive = (self.spread, self.k_reference, self.k_session)
        if not all(np.all(np.isfinite(v)) for v in (*vectors, self.offsets)) or any(np.any(v <= 0) for v in positive):
            raise ParameterError("the speaker statistics are not finite and positive")

    def normaliser(self, voice: Voice) -> tuple[np.ndarray, np.ndarray] | None:
        """``(location, spread)`` ``(d,)`` of the speaker ``voice`` describes, or ``None`` when it
        knows too little (no reference speech, and a session below the minimum)."""
        if voice.source is None:
            return None
        precision = np.ones_like(self.centre, dtype=np.float64)
        shift = np.zeros_like(precision)
        spread = self.spread.astype(np.float64)
        if voice.reference is not None:
            n = voice.reference.count
            weight = n / self.k_reference
            shift += weight * (voice.reference.mean - self.centre)
            precision += weight
            own = voice.reference.std()
            if own is not None:
                v = (n - 1) / (n - 1 + SPREAD_SHRINK)
                scaled = np.log(np.maximum(own * self.ratio, SPREAD_FLOOR * spread))
                spread = np.exp(v * scaled + (1 - v) * np.log(spread))
        if voice.session_ready:
            n = voice.session.count
            heard = voice.probabilities / n
            even = np.full(len(heard), 1.0 / len(heard))
            mix = even + SESSION_CORRECTION * (heard - even)
            neutral = voice.session.mean - self.spread * (mix @ self.offsets)  # the session less its emotion
            weight = n / self.k_session
            shift += weight * (neutral - self.centre)
            precision += weight
        location = self.centre + shift / precision
        return location.astype(np.float32), spread.astype(np.float32)
