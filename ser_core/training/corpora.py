"""The corpora (RAVDESS and EmoDB by their file names, nEMO by its labels file), augmentation,
degradations, and a cached, parallel feature table.

The feature table holds, for every file, the features of the original clip followed by
those of its augmented copies; each row remembers its file, so a split by actor keeps
every copy of a test actor's file out of training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError, ParameterError
from ..features import load_extractor

__all__ = [
    "RAVDESS_EMOTIONS",
    "EMODB_EMOTIONS",
    "Recording",
    "scan_ravdess",
    "scan_emodb",
    "scan_nemo",
    "NEMO_EMOTIONS",
    "AugmentConfig",
    "augment",
    "DEGRADATIONS",
    "degrade",
    "FeatureTable",
    "extract_table",
    "speech_seconds",
]

log = logging.getLogger(__name__)

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
EMODB_EMOTIONS = {
    "W": "angry",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "N": "neutral",
}  # boredom, sadness: not ours
EMODB_SPEAKER_OFFSET = 100  # EmoDB speaker 03 is speaker 103: apart from RAVDESS actors 1-24
NEMO_EMOTIONS = {
    "anger": "angry",
    "fear": "fearful",
    "happiness": "happy",
    "neutral": "neutral",
    "surprise": "surprised",
}  # sadness: not ours (and not in the 16 kHz copy)
NEMO_SPEAKER_OFFSET = 200  # nEMO's speakers in sorted order are 200, 201, ...: apart from RAVDESS and EmoDB
NEMO_LABELS = "labels.csv"
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_EMODB_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")
_DATA_EXTENSIONS = {".wav", ".flac"}
CACHE_VERSION = 5  # bump when feature or augmentation code changes its output


@dataclass(frozen=True)
class Recording:
    """One labelled recording of a corpus. ``actor`` is unique across corpora (EmoDB's are 100 +
    its speaker number); ``intensity`` is RAVDESS's 1 (normal) or 2 (strong), 0 where unknown."""

    path: Path
    emotion: str
    actor: int
    intensity: int
    statement: int
    repetition: int
    corpus: str = "ravdess"


def scan_ravdess(root: str | os.PathLike[str], emotions: tuple[str, ...]) -> list[Recording]:
    """Every RAVDESS speech file under ``root`` (recursively) whose emotion is in ``emotions``.

    Sorted by path, so the order does not depend on the file system.
    """
    root = Path(root)
    if not root.is_dir():
        raise ParameterError(f"The data folder {root} does not exist; pass the folder that holds Actor_XX folders.")
    unknown = set(emotions) - set(RAVDESS_EMOTIONS.values())
    if unknown:
        raise ParameterError(f"Unknown emotions {sorted(unknown)}; RAVDESS has {sorted(RAVDESS_EMOTIONS.values())}.")
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in _DATA_EXTENSIONS or not path.is_file():
            continue
        match = _NAME.match(path.stem)
        if not match:
            continue
        modality, channel, emo, intensity, statement, repetition, actor = match.groups()
        if channel != "01" or emo not in RAVDESS_EMOTIONS:
            continue  # song, or not an emotion code
        emotion = RAVDESS_EMOTIONS[emo]
        if emotion in emotions:
            files.append(Recording(path, emotion, int(actor), int(intensity), int(statement), int(repetition)))
    if not files:
        raise ParameterError(f"No RAVDESS speech files (03-01-EE-II-SS-RR-AA.wav/.flac) were found under {root}.")
    return files


def scan_emodb(root: str | os.PathLike[str], emotions: tuple[str, ...]) -> list[Recording]:
    """Every EmoDB file (``SSTTTEV.wav/.flac``) under ``root`` whose emotion is one of ``emotions``.

    EmoDB has five of the default classes; a class it lacks simply has no files. Sorted by path.
    """
    root = Path(root)
    if not root.is_dir():
        raise ParameterError(f"The data folder {root} does not exist; pass the folder that holds EmoDB's files.")
    files = []
    for path in sorted(root.rglob("*")):
        match = _EMODB_NAME.match(path.stem)
        if path.suffix.lower() not in _DATA_EXTENSIONS or not match or not path.is_file():
            continue
        speaker, text, code, version = match.groups()
        emotion = EMODB_EMOTIONS.get(code)
        if emotion in emotions:
            statement = int(text[1:]) + (0 if text[0] == "a" else 10)
            files.append(
                Recording(
                    path,
                    emotion,
                    EMODB_SPEAKER_OFFSET + int(speaker),
                    0,
                    statement,
                    ord(version) - ord("a") + 1,
                    "emodb",
                )
            )
    if not files:
        raise ParameterError(f"No EmoDB files (SSTTTEV.wav/.flac, e.g. 03a01Fa.flac) were found under {root}.")
    return files


def scan_nemo(root: str | os.PathLike[str], emotions: tuple[str, ...]) -> list[Recording]:
    """Every nEMO file listed in ``root/labels.csv`` whose emotion is one of ``emotions``.

    ``actor`` is 200 + the speaker's index among the corpus's speakers in sorted order;
    ``statement`` is 1 + the sentence's index among its sentences in sorted order (the same
    sentences recur across speakers and emotions); ``repetition`` 1; ``intensity`` 0 (unknown).
    nEMO has five of the default classes. Sorted by path.
    """
    root = Path(root)
    labels = root / NEMO_LABELS
    if not labels.is_file():
        raise ParameterError(f"{labels} does not exist; pass the nEMO folder that holds {NEMO_LABELS} and audio/.")
    with labels.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"file", "speaker", "emotion", "text"} - set(rows[0] if rows else {})
    if missing:
        raise ParameterError(f"{labels} lacks the columns {sorted(missing)}; use the labels file of nEMO's copy.")
    speakers = {s: i for i, s in enumerate(sorted({r["speaker"] for r in rows}))}
    sentences = {t: i for i, t in enumerate(sorted({r["text"] for r in rows}))}
    files = []
    for r in rows:
        emotion = NEMO_EMOTIONS.get(r["emotion"])
        if emotion not in emotions:
            continue
        path = root / r["file"]
        if not path.is_file():
            raise ParameterError(f"{labels} lists {r['file']}, which is not in {root}; restore the corpus.")
        actor = NEMO_SPEAKER_OFFSET + speakers[r["speaker"]]
        files.append(Recording(path, emotion, actor, 0, 1 + sentences[r["text"]], 1, "nemo"))
    if not files:
        raise ParameterError(f"No nEMO files of the emotions {list(emotions)} are listed in {labels}.")
    return sorted(files, key=lambda f: f.path)


@dataclass(frozen=True)
class AugmentConfig:
    """The augmented copies made of each training recording.

    Time stretch, pitch shift and white noise as in the original design; with ``channel``, a
    fourth copy through a random band-pass, as a cheap microphone or a phone line would give.
    """

    stretch: tuple[float, float] = (0.85, 1.15)  # playback-rate range
    semitones: tuple[float, float] = (-2.0, 2.0)
    noise_snr_db: tuple[float, float] = (5.0, 25.0)
    channel: bool = True
    channel_low_hz: tuple[float, float] = (100.0, 400.0)
    channel_high_hz: tuple[float, float] = (3_000.0, 7_000.0)

    def __post_init__(self) -> None:
        if not 0.5 <= self.stretch[0] <= self.stretch[1] <= 2.0:
            raise ParameterError("The stretch range must lie within 0.5 to 2.0.")
        for name in ("semitones", "noise_snr_db", "channel_low_hz", "channel_high_hz"):
            low, high = getattr(self, name)
            if low > high:
                raise ParameterError(f"The {name} range must be (low, high).")

    @classmethod
    def seed(cls) -> AugmentConfig:
        """The seed design's augmentation, kept to evaluate that design beside the shipped one."""
        return cls(noise_snr_db=(15.0, 30.0), channel=False)


def band_pass(y: np.ndarray, *, sr: int, low: float, high: float) -> np.ndarray:
    """Keep only ``low``..``high`` Hz (an ideal filter in the frequency domain). Shape unchanged."""
    spectrum = np.fft.rfft(y)
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, y.size).astype(np.float32)


def add_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise scaled to ``snr_db`` below the power of the speech (the trimmed part), over all of ``y``."""
    speech = audio.trim_silence(y)
    power = float(np.mean(np.square(speech if speech.size else y, dtype=np.float64)))
    return (y + rng.standard_normal(y.size) * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def augment(
    y: np.ndarray, *, sr: int, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> list[np.ndarray]:
    """Augmented copies of a whole recording, silences included (they are trimmed afterwards).

    ``y``: shape ``(n,)``. Returns 3 copies (4 with ``config.channel``); lengths may differ.
    """
    import librosa

    rate = rng.uniform(*config.stretch)
    steps = rng.uniform(*config.semitones)
    snr = rng.uniform(*config.noise_snr_db)
    copies = [
        librosa.effects.time_stretch(y, rate=rate).astype(np.float32),
        librosa.effects.pitch_shift(y, sr=sr, n_steps=steps).astype(np.float32),
        add_noise(y, snr_db=snr, rng=rng),
    ]
    if config.channel:
        low, high = rng.uniform(*config.channel_low_hz), rng.uniform(*config.channel_high_hz)
        copies.append(band_pass(y, sr=sr, low=low, high=high))
    return copies


DEGRADATIONS = {
    "noise_10db": "white noise at 10 dB SNR",
    "telephone": "8 kHz telephone band (300-3,400 Hz)",
    "opus_12k": "Opus at 12 kbit/s",
    "mp3_32k": "MP3 at 32 kbit/s",
}
NOISE_SNR_DB = 10.0
TELEPHONE_RATE = 8_000
TELEPHONE_BAND = (300.0, 3_400.0)


def degrade(y: np.ndarray, kind: str, *, rng: np.random.Generator) -> np.ndarray:
    """A recording as a laptop microphone or a phone line would deliver it. ``(n,) -> (m,)`` at 16 kHz.

    ``kind`` is one of :data:`DEGRADATIONS`. Noise is scaled to the power of the speech
    (the trimmed part), then added to the whole recording, silences included.
    """
    sr = audio.SAMPLE_RATE
    if kind == "noise_10db":
        return add_noise(y, snr_db=NOISE_SNR_DB, rng=rng)
    if kind == "telephone":
        narrow = audio.resample(y, sr=sr, target_sr=TELEPHONE_RATE)
        narrow = band_pass(narrow, sr=TELEPHONE_RATE, low=TELEPHONE_BAND[0], high=TELEPHONE_BAND[1])
        return audio.resample(narrow, sr=TELEPHONE_RATE, target_sr=sr)
    if kind in ("opus_12k", "mp3_32k"):
        import tempfile

        container, codec, suffix, rate, bit_rate = (
            ("ogg", "libopus", ".opus", 48_000, 12_000)
            if kind == "opus_12k"
            else ("mp3", "libmp3lame", ".mp3", sr, 32_000)
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"coded{suffix}"
            audio.encode(path, y, sr, container=container, codec=codec, rate=rate, bit_rate=bit_rate)
            return audio.load(path)
    raise ParameterError(f"Unknown degradation '{kind}'; choose one of {sorted(DEGRADATIONS)}.")


@dataclass
class FeatureTable:
    """Rows of features with, for each row, its file index and whether it is augmented."""

    features: np.ndarray  # (rows, n_features) float32
    file_index: np.ndarray  # (rows,) int: index into ``files``
    augmented: np.ndarray  # (rows,) bool
    files: list[Recording]

    def labels(self, classes: tuple[str, ...]) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[self.files[i].emotion] for i in self.file_index])

    def actors(self) -> np.ndarray:
        return np.array([self.files[i].actor for i in self.file_index])


def _file_rows(
    path: str,
    feature_config: dict,
    filters: dict,
    augment_config: dict | None,
    degradation: str | None,
    random_seed: int,
    preprocessing: dict,
) -> np.ndarray:
    """Features of one file (degraded first, if asked) and its augmented copies; runs in a worker."""
    extractor = load_extractor(feature_config, filters)
    config = audio.Preprocessing.from_dict(preprocessing)
    rng = np.random.default_rng([random_seed, int(hashlib.sha1(Path(path).name.encode()).hexdigest()[:8], 16)])
    y = audio.load(path)
    if degradation is not None:
        y = degrade(y, degradation, rng=rng)
    recordings = [y]
    if augment_config is not None:
        aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in augment_config.items()})
        recordings += augment(y, sr=audio.SAMPLE_RATE, rng=rng, config=aug)
    return extractor(np.stack([audio.speech_clip(r, config=config) for r in recordings]))


def _cache_key(
    files: list[Recording],
    config: dict,
    augment_config: AugmentConfig | None,
    degradation: str | None,
    random_seed: int,
    preprocessing: audio.Preprocessing,
) -> str:
    h = hashlib.sha256()
    stamp = {
        "version": CACHE_VERSION,
        "features": config,
        "augment": asdict(augment_config) if augment_config else None,
        "degradation": degradation,
        "random_seed": random_seed,
        "preprocessing": preprocessing.to_dict(),
    }
    h.update(json.dumps(stamp, sort_keys=True).encode())
    for f in files:
        st = f.path.stat()
        h.update(f"{f.path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def extract_table(
    files: list[Recording],
    *,
    extractor,
    augment_config: AugmentConfig | None,
    random_seed: int,
    degradation: str | None = None,
    cache_dir: Path | None,
    n_jobs: int = 2,
    preprocessing: audio.Preprocessing = audio.PREPROCESSING,
) -> FeatureTable:
    """Features of every file (plus augmented copies), in parallel, cached by content.

    ``extractor`` is any feature extractor (see :func:`ser_core.features.load_extractor`) for the
    clips ``preprocessing`` makes; ``degradation`` (see :data:`DEGRADATIONS`) is applied to each
    recording before anything else.

    The cache key covers the file names, sizes and times, the feature and augmentation
    configuration and the random seed; a cache file is a plain ``.npz`` read without pickle.
    """
    cache = None
    if cache_dir is not None:
        cache = (
            Path(cache_dir)
            / f"features-{_cache_key(files, extractor.config.to_dict(), augment_config, degradation, random_seed, preprocessing)}.npz"
        )
        if cache.exists():
            with np.load(cache, allow_pickle=False) as npz:
                log.info("feature cache hit: %s", cache)
                return FeatureTable(npz["features"], npz["file_index"], npz["augmented"], files)
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    aug = asdict(augment_config) if augment_config else None
    jobs = (
        delayed(_file_rows)(
            str(f.path),
            extractor.config.to_dict(),
            extractor.filters,
            aug,
            degradation,
            random_seed,
            preprocessing.to_dict(),
        )
        for f in files
    )
    results = []
    try:
        runner = Parallel(n_jobs=n_jobs, return_as="generator")
        for rows in tqdm(runner(jobs), total=len(files), desc=f"features {degradation or ''}".strip(), unit="file"):
            results.append(rows)
    except AudioError as e:
        raise AudioError(f"A training file could not be used: {e}") from e
    features = np.concatenate(results).astype(np.float32)
    file_index = np.concatenate([np.full(len(r), i) for i, r in enumerate(results)])
    augmented = np.concatenate([np.arange(len(r)) > 0 for r in results])
    table = FeatureTable(features, file_index, augmented, files)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, features=features, file_index=file_index, augmented=augmented)
        os.replace(tmp, cache)
    return table


def _speech_seconds(path: str, preprocessing: dict) -> float:
    config = audio.Preprocessing.from_dict(preprocessing)
    try:
        return audio.check_speech(audio.load(path), config=config).size / config.sample_rate
    except AudioError:
        return 0.0


def speech_seconds(
    files: list[Recording],
    *,
    cache_dir: Path | None,
    n_jobs: int = 2,
    preprocessing: audio.Preprocessing = audio.PREPROCESSING,
) -> np.ndarray:
    """Seconds of speech in each file, silence trimmed as a clip is (what a speaker's voice counts),
    in parallel and cached like the feature table. ``(files,)``."""
    cache = None
    if cache_dir is not None:
        h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "preprocessing": preprocessing.to_dict()}).encode())
        for f in files:
            st = f.path.stat()
            h.update(f"{f.path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        cache = Path(cache_dir) / f"seconds-{h.hexdigest()[:24]}.npy"
        if cache.exists():
            return np.load(cache, allow_pickle=False)
    from joblib import Parallel, delayed

    seconds = np.array(
        Parallel(n_jobs=n_jobs)(delayed(_speech_seconds)(str(f.path), preprocessing.to_dict()) for f in files)
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, seconds)
        os.replace(tmp, cache)
    return seconds
