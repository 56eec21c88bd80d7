"""Decoding and preprocessing: any file or array in, a 3.5 s mono 16 kHz clip out.

The chain is ``decoding -> to_mono -> resample -> trim_silence -> normalize -> fix_length``.
Each step is its own function so it can be tested alone; :func:`prepare` runs the
steps after decoding and is the one path shared by files and arrays.

This module owns the clip: :class:`Preprocessing` holds every setting that decides it (saved
in each model bundle and checked on load), :func:`speech_clips` turns a signal into the clips
a model judges, :func:`windows` does so for every window of a stream of blocks, and
:func:`take` is the one loop that reads blocks up to a limit; :func:`probe` reads what a file's
header claims without decoding it.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import AudioError, NoSpeechError, NotAudioError, ParameterError, SERError

__all__ = [
    "SAMPLE_RATE",
    "CLIP_SECONDS",
    "N_SAMPLES",
    "MIN_SPEECH_SECONDS",
    "AUDIO_EXTENSIONS",
    "FORMATS",
    "NO_SPEECH",
    "Preprocessing",
    "PREPROCESSING",
    "Span",
    "load",
    "probe",
    "too_long",
    "stream",
    "as_float",
    "to_mono",
    "resample",
    "trim_silence",
    "normalize",
    "fix_length",
    "check_speech",
    "prepare",
    "to_clip",
    "speech_clip",
    "speech_clips",
    "span",
    "windows",
    "take",
    "validate_signal",
    "encode",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz, what every model in this project sees
CLIP_SECONDS = 3.5  # length of one analysis window
MIN_SPEECH_SECONDS = 0.3  # shortest sound, after trimming, worth a verdict
POOL_HOP_SECONDS = 1.0  # speech longer than a clip is judged a clip every this often, and pooled
MIN_INPUT_RATE = 4_000  # Hz; below this there is no speech band left to judge
MAX_INPUT_RATE = 768_000  # Hz; above this a header is lying
TRIM_TOP_DB = 30.0  # frames quieter than the loudest frame by this much are silence
TRIM_FRAME_LENGTH = 1024
TRIM_HOP_LENGTH = 256
SILENCE_RMS = 1e-4  # about -80 dBFS: a loudest frame below this is digital silence
PEAK_LEVEL = 1.0  # peak after normalisation
MAX_SAMPLE_MAGNITUDE = (
    1e6  # float samples are nominally within ±1 (±32,768 if scaled like integers); beyond this, garbage
)
DECODE_BLOCK_SECONDS = 10.0  # streaming decode block
MAX_BLOCK_VALUES = 2**24  # most samples (all channels) decoded at once: 64 MiB of float32
MAX_CHANNELS = 64  # no recording of speech has more; a header that claims more is refused
FORMATS = "WAV, FLAC, MP3, OGG, Opus, M4A or WebM"  # what users are told they may send, everywhere
RESAMPLE_QUALITY = "HQ"  # soxr quality
NO_SPEECH = str(NoSpeechError())  # the sentence for a file without speech; NoSpeechError words it for its source


@dataclass(frozen=True)
class Preprocessing:
    """Every setting that turns audio into the clips a model sees; saved in each bundle.

    A bundle made with other settings is served with its own (they are passed to every step
    below), except the sample rate, which the decoders and the feature sets fix: another one
    is refused.
    """

    sample_rate: int = SAMPLE_RATE
    clip_seconds: float = CLIP_SECONDS
    trim_top_db: float = TRIM_TOP_DB
    trim_frame_length: int = TRIM_FRAME_LENGTH
    trim_hop_length: int = TRIM_HOP_LENGTH
    silence_rms: float = SILENCE_RMS
    peak_level: float = PEAK_LEVEL
    min_speech_seconds: float = MIN_SPEECH_SECONDS
    pool_hop_seconds: float = POOL_HOP_SECONDS

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ParameterError(f"This library prepares audio at {SAMPLE_RATE} Hz, not {self.sample_rate} Hz.")
        if not 0 < self.min_speech_seconds <= self.clip_seconds:
            raise ParameterError("min_speech_seconds must be positive and at most clip_seconds.")
        if not 0 < self.pool_hop_seconds <= self.clip_seconds:
            raise ParameterError("pool_hop_seconds must be positive and at most clip_seconds.")
        if not 0 < self.trim_hop_length <= self.trim_frame_length:
            raise ParameterError("trim_hop_length must be positive and at most trim_frame_length.")
        if self.trim_top_db <= 0 or self.silence_rms <= 0 or self.peak_level <= 0:
            raise ParameterError("trim_top_db, silence_rms and peak_level must be positive.")

    @property
    def n_samples(self) -> int:
        """Samples in one clip."""
        return int(self.clip_seconds * self.sample_rate)

    @property
    def min_speech_samples(self) -> int:
        return int(self.min_speech_seconds * self.sample_rate)

    def to_dict(self) -> dict:
        """The settings, with the derived clip length in samples (what bundles and exports store)."""
        return {**asdict(self), "n_samples": self.n_samples}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """Settings read back from a bundle; refuses keys it does not know and an inconsistent clip length."""
        if not isinstance(data, dict):
            raise ParameterError("The preprocessing settings must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"n_samples"}
        if unknown:
            raise ParameterError(
                f"Unknown preprocessing settings {sorted(unknown)}; the bundle is from another version."
            )
        config = cls(**{k: v for k, v in data.items() if k in known})
        if "n_samples" in data and data["n_samples"] != config.n_samples:
            raise ParameterError(f"n_samples {data['n_samples']} disagrees with clip_seconds {config.clip_seconds}.")
        return config


PREPROCESSING = Preprocessing()  # what this library's shipped models were trained with
N_SAMPLES = PREPROCESSING.n_samples  # 56,000

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".flac",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".aac",
        ".mp4",
        ".webm",
        ".aif",
        ".aiff",
        ".au",
        ".caf",
        ".wma",
        ".mka",
        ".3gp",
        ".amr",
    }
)


# ---------------------------------------------------------------- validation


def validate_sample_rate(sample_rate: object) -> int:
    """Return ``sample_rate`` as an int, or raise when it cannot be a real rate."""
    try:
        rate = float(sample_rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(
            f"The sample rate {sample_rate!r} is not a number; pass the rate in Hz, such as 16000."
        ) from None
    if not np.isfinite(rate) or rate != int(rate) or not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioError(
            f"The sample rate {sample_rate!r} Hz is not usable; audio must be sampled "
            f"between {MIN_INPUT_RATE} and {MAX_INPUT_RATE} Hz."
        )
    return int(rate)


def as_float(samples: object) -> np.ndarray:
    """Convert integer or float samples to float32 in [-1, 1] scale.

    Integers are scaled by their type's full range (unsigned 8-bit is centred first).
    Returns an array of the same shape, float32.
    """
    try:
        y = np.asarray(samples)
    except (TypeError, ValueError):  # ragged lists, objects numpy cannot stack
        raise AudioError("The audio samples cannot be read as one array; pass a 1-D or 2-D numeric array.") from None
    if y.dtype.kind in "iu":
        info = np.iinfo(y.dtype)
        if y.dtype.kind == "u":
            mid = (int(info.max) + 1) / 2
            return ((y.astype(np.float64) - mid) / mid).astype(np.float32)
        return (y.astype(np.float64) / -float(info.min)).astype(np.float32)
    if y.dtype.kind == "f":
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, refused by validate_signal
            return y.astype(np.float32, copy=False)
    raise AudioError(f"Audio samples of type {y.dtype} are not supported; pass integer or floating-point samples.")


def validate_signal(y: np.ndarray) -> np.ndarray:
    """Check a float signal is usable: non-empty, finite and of a sane magnitude. Returns it unchanged."""
    if y.size == 0:
        raise AudioError("The audio is empty; record or choose a file with sound in it.")
    peak = max(float(y.max()), -float(y.min()))  # NaN if any sample is NaN; no temporary array
    if not np.isfinite(peak):
        raise AudioError("The audio contains NaN or infinite samples; re-export it from the recording software.")
    if peak > MAX_SAMPLE_MAGNITUDE:  # resampling such values overflows float32
        raise AudioError(
            f"The audio's samples reach {peak:.3g}, far outside the range of sound (about ±1); "
            "re-export it from the recording software."
        )
    return y


# ---------------------------------------------------------------- steps


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average the channels of ``y`` into one.

    ``y``: shape ``(n,)`` or ``(n, channels)``; a 2-D array with at most 8 rows and more
    columns is read as ``(channels, n)``. Returns shape ``(n,)``.
    """
    if y.ndim == 1:
        return y
    if y.ndim != 2:
        raise AudioError(
            f"Audio must be a 1-D or 2-D array of samples, not {y.ndim}-D; pass (samples,) or (samples, channels)."
        )
    if y.shape[0] <= 8 < y.shape[1]:
        y = y.T
    if y.shape[1] == 0:
        raise AudioError("The audio has no channels; pass (samples,) or (samples, channels) with at least one channel.")
    if y.shape[1] == 1:
        return y[:, 0]
    return y.mean(axis=1, dtype=np.float64).astype(np.float32)  # float64 sum: huge finite samples stay finite


def resample(y: np.ndarray, *, sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal from ``sr`` to ``target_sr`` with soxr. Shape ``(n,) -> (m,)``."""
    if sr == target_sr:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, sr, target_sr, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def frame_rms(y: np.ndarray, *, frame_length: int = TRIM_FRAME_LENGTH, hop_length: int = TRIM_HOP_LENGTH) -> np.ndarray:
    """Root-mean-square of centred frames (zero-padded), as librosa.feature.rms. Shape ``(t,)``."""
    pad = frame_length // 2
    if frame_length % hop_length == 0:  # sums of whole hops: no running sum over the whole signal
        power = np.zeros(y.size + 2 * pad)
        np.square(y, out=power[pad : pad + y.size], dtype=np.float64)
        n_frames = (power.size - frame_length) // hop_length + 1
        k = frame_length // hop_length
        hops = power[: (n_frames - 1 + k) * hop_length].reshape(-1, hop_length).sum(axis=1)
        energy = frame_view(hops, k, 1).sum(axis=1)  # each frame's k hops
        return np.sqrt(energy / frame_length)
    # each frame summed on its own: differences of a running sum lose the digits of quiet frames
    padded = np.concatenate([np.zeros(pad), y.astype(np.float64), np.zeros(pad)])
    return rms_of_frames(frame_view(padded, frame_length, hop_length))


def frame_view(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Read-only view of the frames of a 1-D array, one every ``hop_length`` samples (centred frames
    when ``x`` is padded by ``frame_length // 2`` on both sides): ``(n,) -> (t, frame_length)``, no
    copy. As ``sliding_window_view(x, frame_length)[::hop_length]``, at a fraction of its cost."""
    t = (x.size - frame_length) // hop_length + 1
    step = x.strides[0]
    return np.lib.stride_tricks.as_strided(x, (t, frame_length), (hop_length * step, step), writeable=False)


def rms_of_frames(frames: np.ndarray) -> np.ndarray:
    """Root-mean-square of each frame (row), each summed on its own. ``(t, frame_length) -> (t,)``."""
    return np.sqrt(np.einsum("ij,ij->i", frames, frames) / frames.shape[1])


def trim_silence(y: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> np.ndarray:
    """Cut leading and trailing frames quieter than the loudest by ``config.trim_top_db`` dB.

    Same rule as librosa.effects.trim with the config's frame and hop lengths (1024, 256).
    Shape ``(n,) -> (m,)``, ``m`` may be 0 for silence.
    """
    return _trim_with(y, _trim_rms(y, config), config)


def _trim_rms(y: np.ndarray, config: Preprocessing) -> np.ndarray:
    return frame_rms(y, frame_length=config.trim_frame_length, hop_length=config.trim_hop_length)


def _trim_with(y: np.ndarray, rms: np.ndarray, config: Preprocessing) -> np.ndarray:
    """:func:`trim_silence` given the frame RMS of ``y`` already computed."""
    peak = rms.max(initial=0.0)
    if peak <= 0.0:
        return y[:0]
    loud = np.flatnonzero(rms > peak * 10.0 ** (-config.trim_top_db / 20.0))
    start = int(loud[0]) * config.trim_hop_length
    end = min(y.size, (int(loud[-1]) + 1) * config.trim_hop_length)
    return y[start:end]


def normalize(y: np.ndarray, *, peak: float = PEAK_LEVEL) -> np.ndarray:
    """Scale ``y`` so its largest absolute sample is ``peak``. Shape unchanged."""
    top = float(np.max(np.abs(y), initial=0.0))
    if top == 0.0:
        return y
    return (y * np.float32(peak / top)).astype(np.float32, copy=False)


def fix_length(y: np.ndarray, *, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Centre ``y`` in exactly ``n_samples``: zero-pad both sides or crop the middle."""
    if y.size >= n_samples:
        start = (y.size - n_samples) // 2
        return y[start : start + n_samples]
    before = (n_samples - y.size) // 2
    out = np.zeros(n_samples, y.dtype)
    out[before : before + y.size] = y
    return out


def check_speech(y: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> np.ndarray:
    """Trim ``y`` and check there is enough sound to judge. Returns the trimmed signal.

    Raises :class:`AudioError` for digital silence and for sound shorter than
    ``config.min_speech_seconds``.
    """
    rms = _trim_rms(y, config)
    if rms.max(initial=0.0) < config.silence_rms:
        raise NoSpeechError("silent")
    voiced = _trim_with(y, rms, config)
    if voiced.size < config.min_speech_samples:
        raise AudioError(
            f"The sound is too short to judge ({voiced.size / config.sample_rate:.2f} s after trimming silence); "
            f"record at least {config.min_speech_seconds} s of speech."
        )
    return voiced


def prepare(samples: object, sample_rate: object) -> np.ndarray:
    """Any array at any rate -> mono float32 at ``SAMPLE_RATE``, validated. Shape ``(n,)``."""
    sr = validate_sample_rate(sample_rate)
    y = validate_signal(to_mono(as_float(samples)))
    return y if sr == SAMPLE_RATE else validate_signal(resample(y, sr=sr))


def to_clip(y: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> np.ndarray:
    """Preprocessed clip for an already-trimmed 16 kHz signal: normalised, fixed length.

    Shape ``(n,) -> (config.n_samples,)``.
    """
    return fix_length(normalize(y, peak=config.peak_level), n_samples=config.n_samples)


def speech_clip(y: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> np.ndarray:
    """The one clip of a recording as in training: its speech, centred (a longer one cropped).

    Raises :class:`AudioError` without enough speech. Shape ``(n,) -> (config.n_samples,)``.
    """
    return to_clip(check_speech(y, config=config), config=config)


# ---------------------------------------------------------------- clips and windows


@dataclass(frozen=True)
class Span:
    """A stretch of a recording (a timeline window, or an utterance) and the clips a model judges it by.

    ``clips`` has shape ``(k, n_samples)``. ``pooled`` is false when the speech fits one clip
    (judged exactly as in training) and true when it was longer: then the verdict is the mean
    over the clips with speech, ``k`` may be 0, and ``error`` says why none had any. Without
    speech ``clips`` is empty and ``error`` is the reason.
    """

    start: float
    end: float
    clips: np.ndarray
    pooled: bool = False
    error: AudioError | None = None
    speech: float = 0.0  # seconds of speech in it, silence trimmed


def speech_clips(speech: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> tuple[np.ndarray, bool]:
    """The clips that judge speech of any length, as :func:`check_speech` returns it (trimmed):
    ``(clips (k, n_samples), pooled)``.

    Speech that fits one clip is that clip (``pooled`` false). Longer speech is cut into
    windows of one clip every ``config.pool_hop_seconds`` (the last may be shorter), each
    trimmed and checked again; those with speech are returned, to be pooled.
    """
    if speech.size <= config.n_samples:
        return to_clip(speech, config=config)[None], False
    hop = int(round(config.pool_hop_seconds * config.sample_rate))
    clips = []
    for _, samples in _sliding([speech], config.n_samples, hop):
        try:
            clips.append(speech_clip(samples, config=config))
        except AudioError:
            continue
    return np.stack(clips) if clips else np.zeros((0, config.n_samples), np.float32), True


def windows(
    blocks: Iterable[np.ndarray],
    *,
    window: float | None,
    hop: float | None = None,
    config: Preprocessing = PREPROCESSING,
) -> Iterator[Span]:
    """Sliding windows of ``window`` seconds every ``hop`` seconds over a stream of blocks,
    each as a :class:`Span` with its :func:`speech_clips`; the last window may be shorter.

    ``window=None`` makes the whole stream one window (it is held in memory). Windows without
    speech are kept, with no clips and the reason.
    """
    sr = config.sample_rate
    if window is None:
        blocks = list(blocks)
        win = step = max(1, sum(b.size for b in blocks))
    else:
        win, step = int(round(window * sr)), int(round((hop or window) * sr))
    for start, samples in _sliding(blocks, win, step):
        yield span(start, samples, config=config)


def span(start: int, samples: np.ndarray, *, config: Preprocessing = PREPROCESSING) -> Span:
    """The :class:`Span` of ``samples`` found at sample ``start`` of a recording: its speech
    trimmed and checked, and its :func:`speech_clips` (none, with the reason, without speech)."""
    sr = config.sample_rate
    seconds = (start / sr, (start + samples.size) / sr)
    try:
        speech = check_speech(samples, config=config)
    except AudioError as e:
        return Span(*seconds, np.zeros((0, config.n_samples), np.float32), error=e)
    clips, pooled = speech_clips(speech, config=config)
    error = None if len(clips) else NoSpeechError()
    return Span(*seconds, clips, pooled, error, speech.size / sr)


def _sliding(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """Windows ``(start_sample, samples)`` over a stream of blocks; the last may be shorter."""
    buffer = np.zeros(0, np.float32)
    offset = 0  # sample index of buffer[0]
    next_start = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while next_start + window <= offset + buffer.size:
            i = next_start - offset
            yield next_start, buffer[i : i + window]
            next_start += hop
        drop = max(0, next_start - offset)
        buffer, offset = buffer[drop:], offset + drop
    end = offset + buffer.size
    if next_start < end and (next_start == 0 or next_start + window - hop < end):
        yield next_start, buffer[next_start - offset :]


def take(blocks: Iterator[np.ndarray], max_samples: int) -> tuple[list[np.ndarray], bool]:
    """Read ``blocks`` until more than ``max_samples`` have come: ``(blocks read, passed the limit)``.

    The one loop that bounds what a recording may claim; after ``True`` the rest of ``blocks``
    is unread, so a caller may go on streaming it.
    """
    head: list[np.ndarray] = []
    total = 0
    for block in blocks:
        head.append(block)
        total += block.size
        if total > max_samples:
            return head, True
    return head, False


# ---------------------------------------------------------------- decoding


def _describe(path: Path) -> str:
    return f"'{path.name}'"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{_describe(path)} does not exist; check the path.")
    if path.is_dir():
        raise AudioError(f"{_describe(path)} is a folder, not an audio file; pass a file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{_describe(path)} is empty (0 bytes); choose a file that holds a recording.")


def too_long(source: str | os.PathLike[str] | None, max_seconds: float) -> AudioError:
    """The refusal of a file (or of samples, ``source`` ``None``) longer than ``max_seconds``."""
    what = "The recording" if source is None else _describe(Path(source))
    return AudioError(
        f"{what} is longer than {_duration(max_seconds)}, the limit here; cut it shorter "
        "or use the command line, which reads recordings of any length."
    )


def _check_header(path: Path, channels: int, seconds: float, max_seconds: float | None) -> None:
    """Refuse from the header alone what is too long or has absurdly many channels, before decoding."""
    if channels > MAX_CHANNELS:
        raise AudioError(
            f"{_describe(path)} claims {channels} channels, more than the {MAX_CHANNELS} any recording of "
            "speech needs; export it as mono or stereo."
        )
    if max_seconds is not None and seconds > max_seconds:
        raise too_long(path, max_seconds)


def _soundfile_header(f, path: Path, max_seconds: float | None) -> float:
    """The seconds an open ``soundfile.SoundFile`` says it holds, checked by :func:`_check_header`."""
    seconds = f.frames / f.samplerate if f.samplerate > 0 else 0.0
    _check_header(path, f.channels, seconds, max_seconds)
    return seconds


def _riff_channels(path: Path) -> int | None:
    """The channel count a RIFF/WAVE header claims, read from its ``fmt`` chunk (``None`` for other files):
    for the headers both decoders refuse to describe, so the refusal can say what is wrong."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(head):
        size = int.from_bytes(head[at + 4 : at + 8], "little")
        if head[at : at + 4] == b"fmt " and at + 12 <= len(head):
            return int.from_bytes(head[at + 10 : at + 12], "little")
        at += 8 + size + size % 2
    return None


def _block_frames(block_seconds: float, sr: int, channels: int) -> int:
    return max(1, min(int(block_seconds * sr), MAX_BLOCK_VALUES // max(1, channels)))


def _soundfile_blocks(
    f, path: Path, block_seconds: float, max_seconds: float | None
) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks of an open ``soundfile.SoundFile``, which this closes."""
    with f:
        sr = f.samplerate
        _soundfile_header(f, path, max_seconds)
        block_frames = _block_frames(block_seconds, sr, f.channels)
        # 16-bit files are read as int16 and scaled here: the same values as libsndfile's own
        # float conversion (x / 32768), in less than half the time
        pcm16 = f.subtype == "PCM_16"
        # read() returns only the frames really decoded; SoundFile.blocks() trusts the header's
        # frame count and, for a truncated file, yields the unfilled rest of its buffer
        seekable = f.seekable()  # then read() asks for no more than the header's count: a short block is the last
        while True:
            block = f.read(block_frames, dtype="int16" if pcm16 else "float32", always_2d=True)
            if not len(block):
                return
            yield (block * np.float32(1 / 32768) if pcm16 else block), sr
            if seekable and len(block) < block_frames:
                return


def _undecodable(path: Path, why: Exception | str, kind: type[AudioError] = AudioError) -> AudioError:
    reason = why if isinstance(why, str) else type(why).__name__
    return kind(f"{_describe(path)} could not be decoded as audio ({reason}); use {FORMATS}.")


def _pyav_open(path: Path):
    """The file opened by FFmpeg (PyAV), or :class:`NotAudioError`."""
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as e:
        raise _undecodable(path, e, NotAudioError) from e


def _pyav_header(container, path: Path, max_seconds: float | None) -> tuple[object, float | None]:
    """The first audio stream of an open container and the seconds its header states (``None``
    when it does not say, as in a WebM recorded by a browser), checked by :func:`_check_header`."""
    import av

    if not container.streams.audio:
        raise NotAudioError(f"{_describe(path)} holds no audio track; choose a file with sound in it.")
    stream_ = container.streams.audio[0]
    if not stream_.channels:  # a WAV claiming more channels than FFmpeg takes is refused for that
        _check_header(path, _riff_channels(path) or 0, 0.0, None)
    if not stream_.sample_rate or not stream_.channels:  # FFmpeg guessed the format from the name alone
        raise _undecodable(path, "no sample rate or channels in its header", NotAudioError)
    # FFmpeg's duration is exact for most containers and estimated from the bit rate for a few
    # (MP3 without a Xing header): those may be refused a little below the limit
    seconds = container.duration / av.time_base if container.duration is not None else None
    _check_header(path, stream_.channels, seconds or 0.0, max_seconds)
    return stream_, seconds


def _pyav_blocks(path: Path, block_seconds: float, max_seconds: float | None) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with _pyav_open(path) as container:
        stream_, _ = _pyav_header(container, path, max_seconds)
        resampler = None
        pending: list[np.ndarray] = []
        count = 0
        sr = block_frames = 0
        for frame in container.decode(stream_):
            if resampler is None:
                sr = frame.sample_rate
                block_frames = _block_frames(block_seconds, sr, stream_.channels)
                resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sr)
            for out in resampler.resample(frame):
                block = out.to_ndarray().T  # (n, channels)
                pending.append(block)
                count += block.shape[0]
            if count >= block_frames:
                yield np.concatenate(pending), sr
                pending, count = [], 0
        if resampler is not None:
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().T)
        if pending:
            yield np.concatenate(pending), sr


def _decoded_blocks(path: Path, block_seconds: float, max_seconds: float | None) -> Iterator[tuple[np.ndarray, int]]:
    """Raw decoded blocks ``(n, channels)`` float32 with their rate; soundfile, then PyAV."""
    import soundfile as sf

    try:
        blocks = _soundfile_blocks(sf.SoundFile(str(path)), path, block_seconds, max_seconds)
    except Exception:  # libsndfile cannot open it: hand it to FFmpeg
        blocks = _pyav_blocks(path, block_seconds, max_seconds)
    try:
        yield from blocks
    except SERError:
        raise
    except Exception as e:
        raise _undecodable(path, e) from e


def probe(path: str | os.PathLike[str], *, max_seconds: float | None = None) -> float | None:
    """The length in seconds that a file's header states, read without decoding any of it;
    ``None`` when the header does not say (a WebM recorded by a browser).

    Refuses what :func:`stream` refuses from the header, with the same sentences: a missing or
    empty file, one that is not audio (:class:`NotAudioError`), absurdly many channels, and a
    length over ``max_seconds``. A header may understate; :func:`take` bounds the decoding.
    """
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception:  # libsndfile cannot open it: ask FFmpeg, as stream() does
        with _pyav_open(path) as container:
            return _pyav_header(container, path, max_seconds)[1]
    with f:
        return _soundfile_header(f, path, max_seconds)


def stream(
    path: str | os.PathLike[str], *, block_seconds: float = DECODE_BLOCK_SECONDS, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Decode a file block by block into mono float32 at ``SAMPLE_RATE``.

    Memory stays bounded by the block size however long the file is. Yields arrays of
    shape ``(m,)``. Raises :class:`AudioError` for anything that is not usable audio
    (:class:`NotAudioError` for what is not audio at all), and before decoding for a file
    whose header says it is longer than ``max_seconds``.
    """
    path = Path(path)
    _check_file(path)
    got_any = False
    for y in _resampled(_decoded_blocks(path, block_seconds, max_seconds)):
        if y.size:
            got_any = True
            yield y
    if not got_any:
        raise AudioError(f"{_describe(path)} holds no audio samples; choose a file with sound in it.")


def _resampled(blocks: Iterator[tuple[np.ndarray, int]]) -> Iterator[np.ndarray]:
    """Decoded blocks ``(n, channels)`` -> mono blocks at ``SAMPLE_RATE``.

    A file that decodes to a single block is resampled in one call: soxr's one-shot path
    gives exactly the samples of its stream (checked for rates 8-96 kHz and lengths of 1 to
    441,000 samples) in half the time on a short file. Longer files go through the stream.
    """
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    sr = validate_sample_rate(first[1])
    if second is None:
        y = _mono_block(first[0])
        yield resample(y, sr=sr) if y.size else y
        return
    chained = itertools.chain([first, second], blocks)
    if sr == SAMPLE_RATE:
        yield from (_mono_block(block) for block, _ in chained)
        return
    import soxr

    resampler = soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    for block, _ in chained:
        yield resampler.resample_chunk(_mono_block(block))
    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _mono_block(block: np.ndarray) -> np.ndarray:
    """One decoded block ``(n, channels)`` as validated mono ``(n,)``."""
    return validate_signal(to_mono(block)) if block.size else block[:, 0]


def load(
    source: str | os.PathLike[str] | np.ndarray,
    sample_rate: object = None,
    *,
    max_seconds: float | None = None,
) -> np.ndarray:
    """A file (``source`` a path) or samples (an array with its ``sample_rate``) as one mono
    float32 signal at ``SAMPLE_RATE``, shape ``(n,)``; the one way in for whole recordings.

    Over ``max_seconds`` raises :class:`AudioError`, for a file as soon as decoding passes it.
    """
    limit = np.inf if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            raise ParameterError("Pass sample_rate only with an array; a file states its own rate.")
        blocks, over = take(stream(source, max_seconds=max_seconds), limit)
        y = np.concatenate(blocks)
    else:
        if sample_rate is None:
            raise ParameterError("An array needs its sample_rate, for example predict(samples, 16000).")
        y = prepare(source, sample_rate)
        over = y.size > limit
    if over:
        raise too_long(source if isinstance(source, (str, os.PathLike)) else None, max_seconds)
    return y


def _duration(seconds: float) -> str:
    """``'12 s'``, or ``'10 minutes'`` from a minute up."""
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} minutes"


def encode(
    path: str | os.PathLike[str],
    y: np.ndarray,
    sr: int,
    *,
    container: str,
    codec: str,
    rate: int | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Encode mono float ``y`` at ``sr`` with FFmpeg (PyAV) into ``path``: Opus, AAC, MP3...

    ``rate`` is the codec's sample rate (default ``sr``); ``bit_rate`` in bit/s.
    """
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate or sr)
        stream.layout = "mono"
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for chunk in (*resampler.resample(frame), *resampler.resample(None)):
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Path(path)
