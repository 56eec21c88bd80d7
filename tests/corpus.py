"""The robustness corpus (issue 6): bad and odd inputs, generated into a folder.

Everything is made here from numpy signals (never RAVDESS), so the corpus needs no
download and no large files in the repository.

>>> from tests.corpus import write_corpus
>>> for item in write_corpus(tmp_path):
...     item.name, item.path, item.expectation  # expectation: "predict" or "error"

``expectation`` says what a correct system does with the input: ``"predict"`` when it
holds usable speech, ``"error"`` when the only right answer is one clear sentence.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

try:  # under pytest, tests/ is on sys.path; from the repository root it is a namespace package
    from conftest import speech_like
except ImportError:  # pragma: no cover
    from tests.conftest import speech_like

__all__ = [
    "CorpusItem",
    "write_corpus",
    "write_long_recording",
    "write_many_files",
    "encode_pyav",
    "wav_header",
    "ENCODED",
    "HostileItem",
    "write_hostile",
]

PREDICT, ERROR = "predict", "error"
SR = 16_000


class CorpusItem(NamedTuple):
    """One corpus input: a short name, where it is, and what a correct system does with it."""

    name: str
    path: Path
    expectation: str  # "predict" or "error"


def wav_header(*, rate: int, channels: int = 1, bits: int = 16, data_bytes: int, fmt_tag: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; the fields may lie about what follows."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate % 2**32, (rate * block_align) % 2**32, block_align, bits)
    return (
        b"RIFF"
        + struct.pack("<I", (36 + data_bytes) % 2**32)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes % 2**32)
    )


def pcm16(y: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM bytes of a float signal in [-1, 1]."""
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def encode_pyav(path: Path, y: np.ndarray, sr: int, *, container: str, codec: str, rate: int | None = None) -> Path:
    """Encode mono float ``y`` at ``sr`` with FFmpeg (PyAV) into ``path``: AAC, Opus, MP3..."""
    from ser_core.audio import encode

    return encode(path, y, sr, container=container, codec=codec, rate=rate)


def _soundfile(path: Path, y: np.ndarray, sr: int, **kwargs: str) -> Path:
    import soundfile as sf

    sf.write(str(path), y, sr, **kwargs)
    return path


# name -> writer(path, speech, sr): every compressed format the decoder must read.
ENCODED: dict[str, tuple[str, Callable[[Path, np.ndarray, int], Path]]] = {
    "flac": ("speech.flac", lambda p, y, sr: _soundfile(p, y, sr, format="FLAC")),
    "mp3": ("speech.mp3", lambda p, y, sr: _soundfile(p, y, sr, format="MP3")),
    "ogg_vorbis": ("speech.ogg", lambda p, y, sr: _soundfile(p, y, sr, format="OGG", subtype="VORBIS")),
    "opus": ("speech.opus", lambda p, y, sr: encode_pyav(p, y, sr, container="ogg", codec="libopus", rate=48_000)),
    "m4a_aac": ("speech.m4a", lambda p, y, sr: encode_pyav(p, y, sr, container="ipod", codec="aac")),
    "webm_opus": (
        "speech.webm",
        lambda p, y, sr: encode_pyav(p, y, sr, container="webm", codec="libopus", rate=48_000),
    ),
    "mp3_ffmpeg": ("speech-lame.mp3", lambda p, y, sr: encode_pyav(p, y, sr, container="mp3", codec="libmp3lame")),
}


def write_long_recording(path: Path, seconds: float, *, speech_fraction: float = 1.0, sr: int = SR) -> Path:
    """A long 16-bit WAV written block by block (memory stays small).

    Each 40 s stretch holds ``speech_fraction`` of speech-like sound and then digital
    silence, so a 1-hour file can stand for a long meeting with pauses.
    """
    import soundfile as sf

    period = 40.0
    segment = speech_like(10.0, sr, seed=3)
    voiced = np.tile(segment, int(np.ceil(period * speech_fraction / 10.0)))[: int(period * speech_fraction * sr)]
    block = np.concatenate([voiced, np.zeros(int(period * sr) - voiced.size, np.float32)])
    total = int(seconds * sr)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        written = 0
        while written < total:
            part = block[: total - written]
            f.write(part)
            written += part.size
    return path


def write_many_files(folder: Path, *, n_other: int = 3000, n_audio: int = 3) -> Path:
    """A folder tree of ``n_other`` tiny non-audio files and ``n_audio`` short WAVs."""
    import soundfile as sf

    for i in range(n_other):
        sub = folder / f"part{i % 30:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note{i:05d}.txt").write_bytes(b"x")
    for i in range(n_audio):
        sf.write(str(folder / f"part{i:02d}" / f"clip{i}.wav"), speech_like(1.5, SR, seed=10 + i), SR)
    return folder


def write_corpus(folder: str | Path, *, long: bool = False) -> list[CorpusItem]:
    """Write the corpus into ``folder`` and list its inputs with their expectations.

    ``long=True`` adds a 10-minute recording (about 20 MB); the 1-hour one and the folder
    of thousands of files are made by :func:`write_long_recording` and
    :func:`write_many_files` where a test needs them.
    """
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    speech = speech_like(2.0, SR)
    items: list[CorpusItem] = []

    def add(name: str, filename: str, expectation: str, write: Callable[[Path], object] | None = None) -> None:
        path = folder / filename
        if write is not None:
            write(path)
        items.append(CorpusItem(name, path, expectation))

    add("zero-byte file", "empty.wav", ERROR, lambda p: p.write_bytes(b""))
    add("random bytes named .wav", "noise-bytes.wav", ERROR, lambda p: p.write_bytes(rng.bytes(20_000)))
    add("random bytes named .mp3", "noise-bytes.mp3", ERROR, lambda p: p.write_bytes(rng.bytes(20_000)))
    add("text renamed to .mp3", "notes.mp3", ERROR, lambda p: p.write_text("This is not audio.\n" * 200))
    add("WAV header, no frames", "no-frames.wav", ERROR, lambda p: p.write_bytes(wav_header(rate=SR, data_bytes=0)))
    add(
        "WAV header claiming 0 Hz",
        "zero-rate.wav",
        ERROR,
        lambda p: p.write_bytes(wav_header(rate=0, data_bytes=2 * speech.size) + pcm16(speech)),
    )
    add(
        "WAV header claiming 3 GHz",
        "absurd-rate.wav",
        ERROR,
        lambda p: p.write_bytes(wav_header(rate=3_000_000_000, data_bytes=2 * speech.size) + pcm16(speech)),
    )
    add(
        "WAV header claiming 1 Hz",
        "one-hertz.wav",
        ERROR,
        lambda p: p.write_bytes(wav_header(rate=1, data_bytes=2 * speech.size) + pcm16(speech)),
    )
    add(
        "truncated WAV (header promises 10 s, holds 2 s)",
        "truncated.wav",
        PREDICT,
        lambda p: p.write_bytes(wav_header(rate=SR, data_bytes=2 * 10 * SR) + pcm16(speech)),
    )
    add(
        "WAV cut inside its header",
        "cut-header.wav",
        ERROR,
        lambda p: p.write_bytes(wav_header(rate=SR, data_bytes=2 * SR)[:30]),
    )
    nan = speech.copy()
    nan[SR // 2 : SR // 2 + 100] = np.nan
    add("NaN samples (float WAV)", "nan.wav", ERROR, lambda p: sf.write(str(p), nan, SR, subtype="FLOAT"))
    inf = speech.copy()
    inf[SR] = np.inf
    add("infinite samples (float WAV)", "inf.wav", ERROR, lambda p: sf.write(str(p), inf, SR, subtype="FLOAT"))
    add(
        "samples at ±50 full scale (float WAV)",
        "loud-50x.wav",
        PREDICT,
        lambda p: sf.write(str(p), 50 * speech / np.abs(speech).max(), SR, subtype="FLOAT"),
    )
    add("digital silence", "silence.wav", ERROR, lambda p: sf.write(str(p), np.zeros(2 * SR), SR))
    add("20 ms of sound", "twenty-ms.wav", ERROR, lambda p: sf.write(str(p), speech[SR // 2 : SR // 2 + SR // 50], SR))
    add("8-bit unsigned WAV", "u8.wav", PREDICT, lambda p: sf.write(str(p), speech, SR, subtype="PCM_U8"))
    add(
        "24-bit at 96 kHz",
        "pcm24-96k.wav",
        PREDICT,
        lambda p: sf.write(str(p), speech_like(2.0, 96_000), 96_000, subtype="PCM_24"),
    )
    add(
        "8 kHz telephone (mu-law WAV)",
        "telephone-8k.wav",
        PREDICT,
        lambda p: sf.write(str(p), speech_like(2.0, 8_000), 8_000, subtype="ULAW"),
    )
    add(
        "stereo, one channel silent",
        "stereo-one-silent.wav",
        PREDICT,
        lambda p: sf.write(str(p), np.stack([speech, np.zeros_like(speech)], axis=1), SR),
    )
    add(
        "6 channels at 44.1 kHz, 32-bit int",
        "six-channels.wav",
        PREDICT,
        lambda p: sf.write(str(p), np.repeat(speech_like(2.0, 44_100)[:, None], 6, axis=1), 44_100, subtype="PCM_32"),
    )
    for name, (filename, writer) in ENCODED.items():
        add(name.replace("_", " "), filename, PREDICT, lambda p, w=writer: w(p, speech, SR))
    add("name with spaces and accents", "voix d'émotion – été ü.wav", PREDICT, lambda p: sf.write(str(p), speech, SR))
    add(
        "MP3 cut in half",
        "half.mp3",
        PREDICT,
        lambda p: p.write_bytes(ENCODED["mp3"][1](p, speech_like(4.0, SR), SR).read_bytes()[:-9000]),
    )
    add("audio extension on a folder", "folder.wav", ERROR, lambda p: p.mkdir(exist_ok=True))

    def no_audio(p: Path) -> None:
        p.mkdir(exist_ok=True)
        (p / "readme.txt").write_text("no audio here\n")

    add("folder without audio", "no-audio", ERROR, no_audio)
    add("path that does not exist", "does-not-exist.wav", ERROR)
    if long:
        add("10-minute recording", "ten-minutes.wav", PREDICT, lambda p: write_long_recording(p, 600.0))
    return items


class HostileItem(NamedTuple):
    """An attack on a server: the file, and the status and words of the only right answer."""

    name: str
    path: Path
    status: int
    needle: str


def _constant(seconds: float, level: float) -> np.ndarray:
    return np.full(int(seconds * SR), level, np.float32)


def write_hostile(folder: str | Path) -> list[HostileItem]:
    """Inputs that cost an attacker little and a careless server a lot (issue 14); add to it with
    every attack found. Small files: an hour of FLAC at a constant level is 180 KB."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items: list[HostileItem] = []
    too_long = "longer than"

    def add(name: str, filename: str, status: int, needle: str, write: Callable[[Path], object]) -> None:
        path = folder / filename
        write(path)
        items.append(HostileItem(name, path, status, needle))

    add(
        "an hour at a constant level, FLAC",
        "hour-level.flac",
        422,
        too_long,
        lambda p: sf.write(p, _constant(3600, 0.3), SR),
    )
    add(
        "an hour of digital silence, FLAC",
        "hour-silence.flac",
        422,
        too_long,
        lambda p: sf.write(p, _constant(3600, 0), SR),
    )
    add(
        "11 minutes at a constant level, Opus in WebM",
        "eleven-level.webm",
        422,
        too_long,
        lambda p: encode_pyav(p, _constant(660, 0.3), SR, container="webm", codec="libopus", rate=48_000),
    )
    add(
        "11 minutes of silence, MP3 (length estimated by FFmpeg)",
        "eleven-silence.mp3",
        422,
        too_long,
        lambda p: encode_pyav(p, _constant(660, 0), SR, container="mp3", codec="libmp3lame"),
    )
    second = pcm16(speech_like(1.0, SR))
    add(
        "a WAV header claiming 65,535 channels",
        "channels.wav",
        422,
        "claims 65535 channels",
        lambda p: p.write_bytes(
            wav_header(rate=SR, channels=65_535, bits=8, data_bytes=10 * len(second)) + 10 * second
        ),
    )
    add(
        "a WAV header claiming a 1 Hz rate (hours of samples)",
        "one-hertz.wav",
        422,
        too_long,
        lambda p: p.write_bytes(wav_header(rate=1, data_bytes=len(second)) + second),
    )
    add(
        "a WAV header claiming 4 GB of data over 1 s of speech",
        "lying-size.wav",
        200,
        "",
        lambda p: p.write_bytes(wav_header(rate=SR, data_bytes=2**32 - 64) + second),
    )
    add("text named like audio", "notes.wav", 415, "could not be decoded", lambda p: p.write_text("not audio\n" * 100))
    return items
