"""The model bundle: a folder of safe files, each with its SHA-256 in ``manifest.json``.

Files (none is a pickle):

- ``model.tflite``: the classifier, run by LiteRT when serving;
- ``model.keras``: the same network for Keras (training, export, inspection);
- ``calibrated.tflite``, ``session.tflite`` (optional, together): the models for features relative
  to a speaker's voice, given as references or estimated from the recordings themselves;
- ``features.npz``: filter banks and feature standardisation (mean, scale);
- ``labels.txt``: one class label a line, in output order;
- ``config.json``: preprocessing, feature and training configuration, library versions;
- ``metrics.json``, ``MODEL_CARD.md``, ``confusion_matrix.png``: the evaluation report;
- ``manifest.json``: format version and the checksum of every other file.

Loading verifies every checksum before reading a byte of content, checks the label count
against the model's output, and loads arrays with ``allow_pickle=False``.
Saving writes into a temporary sibling folder and renames it into place, so a failure
or an interruption leaves the previous bundle untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError

__all__ = [
    "Bundle",
    "load_bundle",
    "read_verified",
    "write_bundle",
    "write_folder",
    "default_artifacts_dir",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_TFLITE = "model.tflite"
MODEL_KERAS = "model.keras"
CALIBRATED_TFLITE = "calibrated.tflite"
SESSION_TFLITE = "session.tflite"
FEATURES_NPZ = "features.npz"
LABELS_TXT = "labels.txt"
CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
REQUIRED = (MODEL_TFLITE, FEATURES_NPZ, LABELS_TXT, CONFIG_JSON)
ENV_VAR = "SER_ARTIFACTS"


def default_artifacts_dir() -> Path:
    """``$SER_ARTIFACTS`` if set, else the ``artifacts/`` folder shipped beside the package."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "artifacts"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """What a loaded bundle holds; arrays are read-only views of verified files."""

    path: Path
    labels: tuple[str, ...]
    config: dict
    arrays: dict[str, np.ndarray]
    tflite: bytes
    metrics: dict
    calibrated_tflite: bytes | None = None
    session_tflite: bytes | None = None


def _unreadable(folder: Path, name: str, e: OSError) -> ArtifactError:
    why = e.strerror or type(e).__name__
    return ArtifactError(f"'{name}' in {folder} cannot be read ({why}); check its permissions and that it is a file.")


def read_verified(folder: Path, name: str, expected: dict[str, str]) -> bytes:
    """The bytes of ``folder/name`` after checking them against the manifest's ``expected`` checksums."""
    path = folder / name
    if name not in expected:
        raise ArtifactError(f"'{name}' is not listed in {MANIFEST} of {folder}; rebuild the artifacts with train.py.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"'{name}' is missing from {folder}; restore it or rebuild the artifacts with train.py."
        ) from None
    except OSError as e:
        raise _unreadable(folder, name, e) from e
    if sha256_bytes(data) != expected[name]:
        raise ArtifactError(
            f"'{name}' in {folder} does not match its checksum in {MANIFEST}; "
            "it was changed or damaged, so restore it or rebuild the artifacts."
        )
    return data


def _read_json(data: bytes, name: str) -> dict:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"'{name}' is not valid JSON; rebuild the artifacts.") from e
    if not isinstance(value, dict):
        raise ArtifactError(f"'{name}' must hold a JSON object; rebuild the artifacts.")
    return value


def load_bundle(path: str | os.PathLike[str] | None = None) -> Bundle:
    """Read and verify the bundle in ``path`` (default: :func:`default_artifacts_dir`)."""
    folder = Path(path) if path is not None else default_artifacts_dir()
    if not folder.is_dir():
        raise ArtifactError(f"No artifacts folder at {folder}; pass the folder train.py wrote, or run train.py.")
    try:
        manifest = _read_json((folder / MANIFEST).read_bytes(), MANIFEST)
    except FileNotFoundError:
        raise ArtifactError(f"'{MANIFEST}' is missing from {folder}; rebuild the artifacts with train.py.") from None
    except OSError as e:
        raise _unreadable(folder, MANIFEST, e) from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"The artifacts in {folder} have format version {manifest.get('format_version')!r}, "
            f"this library reads version {FORMAT_VERSION}; rebuild them with this version's train.py."
        )
    expected = manifest.get("files")
    if not isinstance(expected, dict):
        raise ArtifactError(f"'{MANIFEST}' in {folder} lists no files; rebuild the artifacts.")

    labels = tuple(
        line.strip()
        for line in read_verified(folder, LABELS_TXT, expected).decode("utf-8").splitlines()
        if line.strip()
    )
    config = _read_json(read_verified(folder, CONFIG_JSON, expected), CONFIG_JSON)
    try:
        with np.load(io.BytesIO(read_verified(folder, FEATURES_NPZ, expected)), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as e:
        raise ArtifactError(f"'{FEATURES_NPZ}' in {folder} is not a plain array archive; rebuild the artifacts.") from e
    tflite = read_verified(folder, MODEL_TFLITE, expected)
    calibrated = read_verified(folder, CALIBRATED_TFLITE, expected) if CALIBRATED_TFLITE in expected else None
    session = read_verified(folder, SESSION_TFLITE, expected) if SESSION_TFLITE in expected else None
    metrics = (
        _read_json(read_verified(folder, METRICS_JSON, expected), METRICS_JSON) if METRICS_JSON in expected else {}
    )

    if list(labels) != list(config.get("labels", [])):
        raise ArtifactError(
            f"'{LABELS_TXT}' in {folder} lists {len(labels)} labels that differ from {CONFIG_JSON}; rebuild the artifacts."
        )
    for key in ("mean", "scale"):
        if key not in arrays:
            raise ArtifactError(f"'{FEATURES_NPZ}' in {folder} lacks the '{key}' array; rebuild the artifacts.")
    return Bundle(
        path=folder,
        labels=labels,
        config=config,
        arrays=arrays,
        tflite=tflite,
        metrics=metrics,
        calibrated_tflite=calibrated,
        session_tflite=session,
    )


def write_bundle(out: str | os.PathLike[str], files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> content) plus a manifest as the folder ``out``, atomically
    (:func:`write_folder`). Returns the final path."""
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise ArtifactError(f"A bundle needs {missing}; this is a bug in the caller.")
    manifest = {"format_version": FORMAT_VERSION, "files": {n: sha256_bytes(d) for n, d in sorted(files.items())}}
    return write_folder(out, {**files, MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode()})


def write_folder(out: str | os.PathLike[str], files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> content) as the folder ``out``, all or nothing.

    The files go to a temporary folder beside ``out`` and are flushed to disk; only then is
    the old folder (if any) swapped out in one step and removed, so a failure or an
    interruption leaves it untouched. The folder is readable by all, as an installed model
    is. Returns the final path.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        for entry in tmp.iterdir():
            with open(entry, "rb") as f:
                os.fsync(f.fileno())
        if out.exists():
            _exchange(tmp, out)  # tmp now holds the previous folder
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE), so ``b`` never goes missing.

    Elsewhere, falls back to two renames with a brief window in which ``b`` is absent.
    """
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    aside = b.parent / f".{b.name}.old-{os.getpid()}"
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)
