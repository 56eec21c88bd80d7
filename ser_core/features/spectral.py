"""The core every feature set shares: reused scratch arrays, centred frames, the power spectrum,
decibels, the spectral rolloff, the check on a batch of clips, and saved settings.

NumPy only. The feature sets (:mod:`ser_core.features.seed`, :mod:`ser_core.features.rich`)
depend on this module and never on each other; :mod:`ser_core.features` chooses among them.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, fields
from typing import Self

import numpy as np

from ..errors import ParameterError

__all__ = [
    "AMIN",
    "Workspace",
    "FeatureSettings",
    "as_clips",
    "centre_pad",
    "power_spectrum",
    "power_to_db",
    "rolloff_bins",
]

AMIN = 1e-10  # power floor before dB, as librosa.power_to_db
ROLLOFF_BLOCK = 16  # bins per block of the rolloff's running sum (speed only, not the definition)


class Workspace(threading.local):
    """Scratch arrays of one extractor, one set per thread, reused across calls (no page faults
    per clip). Each extractor owns its workspace, so two extractors never share a buffer."""

    def get(self, name: str, shape: tuple[int, ...], max_rows: int, dtype: type = np.float64) -> np.ndarray:
        """A C-contiguous array (uninitialised) of ``shape``, whose first axis may grow to
        ``max_rows``. Valid until this thread asks for ``name`` again."""
        key = (name, shape[1:], np.dtype(dtype).str)
        buffer = self.__dict__.get(key)
        if buffer is None or buffer.shape[0] < shape[0]:
            buffer = self.__dict__[key] = np.empty((max(max_rows, shape[0]), *shape[1:]), dtype)
        return buffer[: shape[0]]


def as_clips(clips: np.ndarray, n_samples: int) -> tuple[np.ndarray, bool]:
    """``(batch, n_samples)`` float32 clips, and whether a single clip ``(n_samples,)`` was given."""
    clips = np.asarray(clips, dtype=np.float32)
    single = clips.ndim == 1
    if single:
        clips = clips[None]
    if clips.ndim != 2 or clips.shape[1] != n_samples:
        raise ParameterError(f"Clips must have {n_samples} samples each; preprocess them first.")
    return clips, single


class FeatureSettings:
    """Saving and reading back a feature set's frozen dataclass of settings."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """``cls(**data)``, refusing settings it does not know."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ParameterError(f"Unknown feature settings {sorted(unknown)}; the bundle is from another version.")
        return cls(**data)


def centre_pad(
    x: np.ndarray, pad: int, *, workspace: Workspace, name: str, max_rows: int, max_width: int
) -> np.ndarray:
    """Rows ``x`` ``(b, n)`` with ``pad`` zeros on both sides, in a reused float64 buffer. ``(b, n + 2 pad)``."""
    b, n = x.shape
    out = workspace.get(name, (b, max_width), max_rows)[:, : n + 2 * pad]
    out[:, :pad] = 0.0
    out[:, pad : pad + n] = x
    out[:, pad + n :] = 0.0
    return out


def power_spectrum(
    frames: np.ndarray,
    window: np.ndarray,
    *,
    workspace: Workspace,
    name: str,
    max_rows: int,
    dtype: type = np.float64,
) -> np.ndarray:
    """Power spectrum of windowed frames: ``(..., n_fft) -> (..., n_fft // 2 + 1)`` in ``dtype``.

    Float64 FFTs (NumPy's pocketfft is several times faster in double than in single); with
    ``dtype=float32`` the real and imaginary parts are squared in single precision. Computed in
    the workspace: the result is valid until the same thread calls this with ``name`` again.
    """
    shape, n_fft = frames.shape[:-1], frames.shape[-1]
    bins = n_fft // 2 + 1
    windowed = np.multiply(frames, window, out=workspace.get(f"{name}_windowed", (*shape, n_fft), max_rows))
    spectrum = np.fft.rfft(
        windowed, axis=-1, out=workspace.get(f"{name}_spectrum", (*shape, bins), max_rows, np.complex128)
    )
    if np.dtype(dtype) == np.float64:
        parts = spectrum.view(np.float64)  # re, im interleaved
    else:
        parts = workspace.get(f"{name}_parts", (*shape, 2 * bins), max_rows, dtype)
        np.copyto(parts, spectrum.view(np.float64), casting="same_kind")
    np.square(parts, out=parts)
    return np.add(
        parts[..., 0::2], parts[..., 1::2], out=workspace.get(f"{name}_power", (*shape, bins), max_rows, dtype)
    )


def power_to_db(power: np.ndarray, *, top_db: float, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """librosa.power_to_db with ref=1 and amin=1e-10: floored at the maximum over ``axis``
    (all of it by default) minus ``top_db``. Shape unchanged."""
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    return np.maximum(db, db.max(axis=axis, keepdims=axis is not None) - top_db)


def rolloff_bins(S: np.ndarray, fraction: float, block: int = ROLLOFF_BLOCK) -> np.ndarray:
    """Per row of ``S`` ``(rows, bins)`` (non-negative), the first bin where the running sum reaches
    ``fraction`` of the row's total, as librosa.feature.spectral_rolloff: the number of bins
    whose running sum is still below it. Shape ``(rows,)`` int.

    Summed a block of bins at a time, then cumulated only inside the block where the level
    falls: a full running sum over every bin costs more than the FFT.
    """
    rows_n, n = S.shape
    block = max(1, min(block, n))
    n_blocks = n // block
    running = np.cumsum(S[:, : n_blocks * block].reshape(rows_n, n_blocks, block).sum(axis=2), axis=1)
    level = fraction * (running[:, -1] + S[:, n_blocks * block :].sum(axis=1))
    k = np.count_nonzero(running < level[:, None], axis=1)  # whole blocks below the level (n_blocks: the tail)
    rows = np.arange(rows_n)
    before = np.where(k > 0, running[rows, np.maximum(k - 1, 0)], 0.0)
    cols = np.minimum(k[:, None] * block + np.arange(block), n - 1)  # the tail may be shorter than a block
    inside = before[:, None] + np.cumsum(S[rows[:, None], cols], axis=1)
    return np.minimum(k * block + np.count_nonzero(inside < level[:, None], axis=1), n - 1)
