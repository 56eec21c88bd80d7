"""``python -m ser_core export``: the model and everything needed to feed it, for other runtimes.

The folder holds the network (``model.tflite`` or ``model.onnx``; input ``(batch, 105)``
standardised features, output ``(batch, classes)`` probabilities), ``labels.txt``,
``features.json`` (feature and preprocessing configuration, feature names) and
``features.npz`` (filter banks, standardisation mean and scale, and the derived DCT matrix
and delta-mean weights), plus ``export.json`` with the SHA-256 of every file.
docs/FEATURES.md describes the computation; docs/tflite_example.py runs it without ser_core.

The folder is written beside its destination and renamed into place, so a failure leaves
the previous export untouched; a destination that is not an earlier export is never replaced.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .. import audio, bundle
from ..bundle import MODEL_KERAS, Bundle, sha256, write_folder
from ..errors import ArtifactError, ParameterError
from ..features import load_extractor
from ..features.seed import SeedFeatureExtractor

__all__ = ["EXPORT_FORMATS", "export_model", "EXPORT_JSON"]

EXPORT_FORMATS = {"tflite": "model.tflite", "onnx": "model.onnx"}
ONNX_PACKAGES = ("tensorflow", "tf2onnx", "onnx")  # the "train" extra: not in the lean install
EXPORT_JSON = "export.json"
EXPORT_VERSION = 1


def _feature_files(source: Bundle) -> dict[str, bytes]:
    """labels.txt, features.json and features.npz for a bundle."""
    extractor = load_extractor(source.features, source.filters)
    preprocessing = audio.Preprocessing.from_dict(source.preprocessing)
    config = extractor.config
    description = {
        "features": config.to_dict(),
        "n_features": extractor.n_features,
        "feature_names": list(extractor.names),
        "preprocessing": preprocessing.to_dict(),
        "decoding": {"mono": "mean of the channels", "resampler": f"soxr, quality {audio.RESAMPLE_QUALITY}"},
        "standardisation": "x = (features - mean) / scale, arrays 'mean' and 'scale' in features.npz",
        "labels": list(source.labels),
        "model_input": "float32 (batch, n_features) standardised features",
        "model_output": "float32 (batch, n_labels) probabilities, in the order of labels.txt",
    }
    arrays = {
        **extractor.filters,
        "mean": np.asarray(source.mean, np.float32),
        "scale": np.asarray(source.scale, np.float32),
    }
    if isinstance(extractor, SeedFeatureExtractor):  # derived matrices of the seed set, for reimplementers
        arrays["dct"] = extractor.dct
        arrays["delta_mean_weights"] = extractor.delta_mean_weights
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return {
        "labels.txt": ("\n".join(source.labels) + "\n").encode("utf-8"),
        "features.json": (json.dumps(description, indent=2) + "\n").encode("utf-8"),
        "features.npz": buffer.getvalue(),
    }


def _require_keras_file(source: Bundle) -> None:
    """Refuse, in one sentence saying what to do, the shipped model of an installed package: its
    wheel leaves ``model.keras`` out (:data:`ser_core.bundle.NOT_INSTALLED`)."""
    if (
        source.path is not None
        and source.path.resolve() == bundle.SHIPPED_FOLDER
        and not (source.path / MODEL_KERAS).is_file()
    ):
        raise ArtifactError(
            f"ONNX export needs '{MODEL_KERAS}', which the installed package leaves out to stay small; "
            "export from a clone of the repository (after pip install -r requirements-train.txt there), "
            "or pass --artifacts with a bundle that train.py wrote."
        )


def load_keras_model(source: Bundle):  # -> keras.Model
    """The bundle's Keras network, checksum-verified, built (called once) and ready to export."""
    from .networks import quiet_tensorflow

    _require_keras_file(source)
    data = bundle.read_file(source.path, MODEL_KERAS)
    quiet_tensorflow()
    import keras

    with tempfile.TemporaryDirectory(prefix="ser-keras-") as tmp:
        path = Path(tmp) / MODEL_KERAS
        path.write_bytes(data)
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as e:
            raise ArtifactError(
                f"'{MODEL_KERAS}' in {source.path} cannot be loaded by Keras ({type(e).__name__}); rebuild the artifacts."
            ) from e
    model(np.zeros((1, model.input_shape[-1]), np.float32))  # ONNX export needs a called model
    return model


def _onnx_bytes(source: Bundle) -> bytes:
    from .networks import quiet_tensorflow

    _require_keras_file(source)  # first: where the network is missing, the packages would not help
    quiet_tensorflow()
    missing = [name for name in ONNX_PACKAGES if not _importable(name)]
    if missing:
        raise ParameterError(
            f"ONNX export needs {', '.join(missing)}, which the lean install leaves out; "
            "pip install -r requirements-train.txt in the repository."
        )
    model = load_keras_model(source)
    with tempfile.TemporaryDirectory(prefix="ser-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _is_export(folder: Path) -> bool:
    return (folder / EXPORT_JSON).is_file()


def export_model(out: str | os.PathLike[str], fmt: str, *, artifacts: str | os.PathLike[str] | None = None) -> Path:
    """Write the model in ``fmt`` (``'tflite'`` or ``'onnx'``) with its feature files to the folder ``out``."""
    if fmt not in EXPORT_FORMATS:
        raise ParameterError(f"Unknown export format '{fmt}'; choose one of {', '.join(sorted(EXPORT_FORMATS))}.")
    out = Path(out).resolve()
    if out.exists() and not (out.is_dir() and (_is_export(out) or not any(out.iterdir()))):
        raise ParameterError(f"'{out}' exists and is not an earlier export; choose a new or empty folder for --out.")
    source = bundle.read(artifacts)
    files = _feature_files(source)
    model_name = EXPORT_FORMATS[fmt]
    files[model_name] = source.model if fmt == "tflite" else _onnx_bytes(source)
    from .. import __version__

    files[EXPORT_JSON] = (
        json.dumps(
            {
                "export_version": EXPORT_VERSION,
                "format": fmt,
                "model": model_name,
                "ser_core_version": __version__,
                "source_bundle": str(source.path),
                "source_versions": source.versions,
                "files": {name: sha256(data) for name, data in sorted(files.items())},
            },
            indent=2,
        )
        + "\n"
    ).encode("utf-8")

    return write_folder(out, files)
