"""The model bundle: its whole schema in one place, :func:`read` and :func:`write`.

A bundle is a folder of safe files (none is a pickle), each with its SHA-256 in ``manifest.json``:

- ``model.tflite``: the classifier, run by LiteRT when serving; ``model.keras``: the same network
  for Keras (export, inspection);
- ``adapted.tflite`` (optional): the adapted model, which judges features normalised by a
  speaker's voice (:mod:`ser_core.inference.voice`); bundles built before it had two models for
  an older design (``calibrated.tflite``, ``session.tflite``: :data:`LEGACY_ADAPTED`), which are
  left unread, so such a bundle judges without adaptation;
- ``features.npz``: the feature set's filter banks, the standardisation of each model, the
  speaker statistics of the training population and the intensity heads (:data:`ARRAYS` names
  every key this module owns; the rest are filters);
- ``labels.txt``: one class label a line, in output order;
- ``config.json``: the sections of :data:`SECTIONS` (preprocessing, feature set, training run,
  library versions, adaptation, intensity);
- ``metrics.json``, ``MODEL_CARD.md``, ``confusion_matrix.png``: the evaluation report;
- ``manifest.json``: format version and the checksum of every other file.

:func:`read` checks each file it reads against its checksum before using a byte of it, loads
arrays with ``allow_pickle=False`` and returns a :class:`Bundle` of typed parts; :func:`write` is
what training and export call, the inverse of :func:`read`. A folder is written into a temporary
sibling and renamed into place, so a failure or an interruption leaves the previous one untouched.

The shipped model lives inside the package (:data:`SHIPPED_FOLDER`), so an installed package
judges audio from any folder. Its wheel leaves out what inference never reads
(:data:`NOT_INSTALLED`: the Keras network and the confusion matrix); the manifest still lists
them, and :func:`read_file` says what to do when one is asked for and absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ArtifactError

__all__ = [
    "Bundle",
    "AdaptedPart",
    "IntensityPart",
    "read",
    "read_file",
    "write",
    "write_files",
    "write_folder",
    "default_folder",
    "SHIPPED_FOLDER",
    "sha256",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODEL_TFLITE",
    "MODEL_KERAS",
    "FEATURES_NPZ",
    "LABELS_TXT",
    "CONFIG_JSON",
    "METRICS_JSON",
    "MODEL_CARD_MD",
    "CONFUSION_PNG",
    "ADAPTED_TFLITE",
    "REQUIRED",
    "NOT_INSTALLED",
    "ENV_VAR",
]

FORMAT_VERSION = 1
ENV_VAR = "SER_ARTIFACTS"  # selects another bundle than the shipped one
SHIPPED_FOLDER = Path(__file__).resolve().parent / "artifacts"  # the shipped model, inside the package and its wheel

# ---------------------------------------------------------------- files
MANIFEST = "manifest.json"
MODEL_TFLITE = "model.tflite"
MODEL_KERAS = "model.keras"
FEATURES_NPZ = "features.npz"
LABELS_TXT = "labels.txt"
CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
MODEL_CARD_MD = "MODEL_CARD.md"
CONFUSION_PNG = "confusion_matrix.png"
ADAPTED_TFLITE = "adapted.tflite"
LEGACY_ADAPTED = ("calibrated.tflite", "session.tflite")  # the older design's adapted models: not read
REQUIRED = (MODEL_TFLITE, FEATURES_NPZ, LABELS_TXT, CONFIG_JSON)
NOT_INSTALLED = (MODEL_KERAS, CONFUSION_PNG)  # in the repository's bundle, not in the wheel: inference never reads them

# ---------------------------------------------------------------- arrays in features.npz
MEAN, SCALE = "mean", "scale"  # the standardisation of model.tflite's input
ADAPTED_ARRAYS = ("adapted_mean", "adapted_scale")  # the standardisation of the adapted model's input
POPULATION_ARRAYS = {  # the training speakers' statistics (inference.voice.Population), by field
    name: f"voice_{name}" for name in ("spread", "ratio", "offsets", "centre", "k_reference", "k_session")
}
LEGACY_ARRAYS = ("calibrated_mean", "calibrated_scale", "session_mean", "session_scale")
INTENSITY_ARRAYS = ("intensity_weights", "intensity_bias", "intensity_mean", "intensity_scale")
ARRAYS = (MEAN, SCALE, *ADAPTED_ARRAYS, *POPULATION_ARRAYS.values(), *LEGACY_ARRAYS, *INTENSITY_ARRAYS)

# ---------------------------------------------------------------- sections of config.json, in the order written
SECTIONS = ("labels", "preprocessing", "features", "feature_names", "training", "versions", "adaptation", "intensity")
STORED_SECTION = {"adaptation": "calibration"}  # the name a section is stored under, where it differs


def default_folder() -> Path:
    """``$SER_ARTIFACTS`` if set, else the shipped model (:data:`SHIPPED_FOLDER`), which an
    installed package carries, so it works from any folder."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else SHIPPED_FOLDER


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AdaptedPart:
    """The adapted model (for features normalised by a speaker's voice), its input's
    standardisation, and the training population's speaker statistics (by field name of
    :class:`ser_core.inference.voice.Population`)."""

    model: bytes
    mean: np.ndarray
    scale: np.ndarray
    population: dict[str, np.ndarray]


@dataclass(frozen=True)
class IntensityPart:
    """The intensity heads as stored: ``weights`` ``(n_features, k)``, ``bias`` ``(k,)`` for the
    ``k`` ``emotions``, on features standardised by ``mean`` and ``scale``."""

    emotions: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    settings: dict = field(default_factory=dict)  # how they were trained (config.json)


@dataclass(frozen=True)
class Bundle:
    """A bundle's content as typed parts; arrays of a read bundle are read-only views of verified files.

    ``path`` is the folder it was read from (``None`` for one being built). ``adapted`` is the
    adapted model (``None`` without one); ``adaptation`` holds how it was trained.
    """

    labels: tuple[str, ...]
    preprocessing: dict
    features: dict  # the feature set's settings
    filters: dict[str, np.ndarray]  # what the feature set needs besides its settings
    mean: np.ndarray
    scale: np.ndarray
    model: bytes
    feature_names: tuple[str, ...] = ()
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    adaptation: dict | None = None
    adapted: AdaptedPart | None = None
    intensity: IntensityPart | None = None
    path: Path | None = None

    @property
    def config(self) -> dict:
        """``config.json`` as written: every section present, in :data:`SECTIONS` order."""
        values = {
            "labels": list(self.labels),
            "preprocessing": self.preprocessing,
            "features": self.features,
            "feature_names": list(self.feature_names),
            "training": self.training,
            "versions": self.versions,
            "adaptation": self.adaptation,
            "intensity": None
            if self.intensity is None
            else {"emotions": list(self.intensity.emotions), **self.intensity.settings},
        }
        return {STORED_SECTION.get(k, k): values[k] for k in SECTIONS if values[k] is not None}

    def where(self) -> str:
        return str(self.path) if self.path is not None else "the bundle"


# ---------------------------------------------------------------- reading


def _unreadable(folder: Path, name: str, e: OSError) -> ArtifactError:
    why = e.strerror or type(e).__name__
    return ArtifactError(f"'{name}' in {folder} cannot be read ({why}); check its permissions and that it is a file.")


def _manifest(folder: Path) -> dict[str, str]:
    """The checksums the manifest of ``folder`` lists, after checking its format version."""
    if not folder.is_dir():
        raise ArtifactError(f"No artifacts folder at {folder}; pass the folder train.py wrote, or run train.py.")
    try:
        manifest = _json((folder / MANIFEST).read_bytes(), MANIFEST)
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
    return expected


def _verified(folder: Path, name: str, expected: dict[str, str]) -> bytes:
    """The bytes of ``folder/name`` after checking them against the manifest's ``expected`` checksums."""
    if name not in expected:
        raise ArtifactError(f"'{name}' is not listed in {MANIFEST} of {folder}; rebuild the artifacts with train.py.")
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"'{name}' is missing from {folder}; restore it or rebuild the artifacts with train.py."
        ) from None
    except OSError as e:
        raise _unreadable(folder, name, e) from e
    if sha256(data) != expected[name]:
        raise ArtifactError(
            f"'{name}' in {folder} does not match its checksum in {MANIFEST}; "
            "it was changed or damaged, so restore it or rebuild the artifacts."
        )
    return data


def read_file(folder: str | os.PathLike[str], name: str) -> bytes:
    """One file of the bundle in ``folder`` (``model.keras``, say), verified against its manifest."""
    folder = Path(folder)
    return _verified(folder, name, _manifest(folder))


def _json(data: bytes, name: str) -> dict:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"'{name}' is not valid JSON; rebuild the artifacts.") from e
    if not isinstance(value, dict):
        raise ArtifactError(f"'{name}' must hold a JSON object; rebuild the artifacts.")
    return value


def read(path: str | os.PathLike[str] | None = None) -> Bundle:
    """Read and verify the bundle in ``path`` (default: :func:`default_folder`)."""
    folder = Path(path) if path is not None else default_folder()
    expected = _manifest(folder)
    labels = tuple(
        line.strip() for line in _verified(folder, LABELS_TXT, expected).decode("utf-8").splitlines() if line.strip()
    )
    config = _json(_verified(folder, CONFIG_JSON, expected), CONFIG_JSON)
    try:
        with np.load(io.BytesIO(_verified(folder, FEATURES_NPZ, expected)), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as e:
        raise ArtifactError(f"'{FEATURES_NPZ}' in {folder} is not a plain array archive; rebuild the artifacts.") from e
    model = _verified(folder, MODEL_TFLITE, expected)
    adapted_model = _verified(folder, ADAPTED_TFLITE, expected) if ADAPTED_TFLITE in expected else None
    metrics = _json(_verified(folder, METRICS_JSON, expected), METRICS_JSON) if METRICS_JSON in expected else {}

    if list(labels) != list(config.get("labels", [])):
        raise ArtifactError(
            f"'{LABELS_TXT}' in {folder} lists {len(labels)} labels that differ from {CONFIG_JSON}; rebuild the artifacts."
        )
    for key in (MEAN, SCALE):
        if key not in arrays:
            raise ArtifactError(f"'{FEATURES_NPZ}' in {folder} lacks the '{key}' array; rebuild the artifacts.")
    section = {k: config.get(STORED_SECTION.get(k, k)) for k in SECTIONS}
    return Bundle(
        labels=labels,
        preprocessing=section["preprocessing"],
        features=section["features"],
        filters={k: v for k, v in arrays.items() if k not in ARRAYS},
        mean=arrays[MEAN],
        scale=arrays[SCALE],
        model=model,
        feature_names=tuple(section["feature_names"] or ()),
        training=section["training"] or {},
        versions=section["versions"] or {},
        metrics=metrics,
        adaptation=section["adaptation"],
        adapted=None if adapted_model is None else _adapted_part(folder, adapted_model, arrays),
        intensity=_intensity_part(folder, section["intensity"], arrays),
        path=folder,
    )


def _adapted_part(folder: Path, model: bytes, arrays: dict[str, np.ndarray]) -> AdaptedPart:
    missing = [key for key in (*ADAPTED_ARRAYS, *POPULATION_ARRAYS.values()) if key not in arrays]
    if missing:
        raise ArtifactError(
            f"The adapted model in {folder} is not described fully (no {missing[0]!r} array); rebuild the artifacts."
        )
    population = {name: arrays[key] for name, key in POPULATION_ARRAYS.items()}
    return AdaptedPart(model, arrays[ADAPTED_ARRAYS[0]], arrays[ADAPTED_ARRAYS[1]], population)


def _intensity_part(folder: Path, section: object, arrays: dict[str, np.ndarray]) -> IntensityPart | None:
    """The intensity heads, or ``None`` for a bundle without them (built before intensity existed)."""
    if section is None:
        return None
    try:
        emotions = tuple(section["emotions"])
        weights, bias, mean, scale = (arrays[key] for key in INTENSITY_ARRAYS)
    except (KeyError, TypeError) as e:
        raise ArtifactError(
            f"In {folder}: the intensity model is not described fully ({e}); rebuild the artifacts."
        ) from e
    settings = {k: v for k, v in section.items() if k != "emotions"}
    return IntensityPart(emotions, weights, bias, mean, scale, settings)


# ---------------------------------------------------------------- writing


def write(
    out: str | os.PathLike[str], bundle: Bundle, *, keras: bytes, reports: dict[str, bytes] | None = None
) -> Path:
    """Write ``bundle`` as the folder ``out``, with the Keras network and the human-readable
    ``reports`` (model card, confusion matrix), atomically (:func:`write_folder`)."""
    arrays = {MEAN: bundle.mean, SCALE: bundle.scale, **bundle.filters}
    files = {MODEL_TFLITE: bundle.model, MODEL_KERAS: keras}
    if bundle.adapted is not None:
        files[ADAPTED_TFLITE] = bundle.adapted.model
        arrays.update(dict(zip(ADAPTED_ARRAYS, (bundle.adapted.mean, bundle.adapted.scale), strict=True)))
        arrays.update({POPULATION_ARRAYS[name]: value for name, value in bundle.adapted.population.items()})
    if bundle.intensity is not None:
        i = bundle.intensity
        arrays.update(dict(zip(INTENSITY_ARRAYS, (i.weights, i.bias, i.mean, i.scale), strict=True)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files.update({
        FEATURES_NPZ: buffer.getvalue(),
        LABELS_TXT: ("\n".join(bundle.labels) + "\n").encode(),
        CONFIG_JSON: (json.dumps(bundle.config, indent=2) + "\n").encode(),
        METRICS_JSON: (json.dumps(bundle.metrics, indent=2) + "\n").encode(),
        **(reports or {}),
    })  # fmt: skip
    return write_files(out, files)


def write_files(out: str | os.PathLike[str], files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> content) plus a manifest as the folder ``out``, atomically
    (:func:`write_folder`). Returns the final path."""
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise ArtifactError(f"A bundle needs {missing}; this is a bug in the caller.")
    manifest = {"format_version": FORMAT_VERSION, "files": {n: sha256(d) for n, d in sorted(files.items())}}
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
