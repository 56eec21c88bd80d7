"""Building the model bundle: read the corpora, evaluate the models speaker-independently,
train them on every speaker, and write the bundle (:func:`ser_core.bundle.write`) with its
metrics and model card.

The default model is fitted and cross-validated by :mod:`ser_core.training.fit`; the adapted
models by :mod:`ser_core.training.adapted`; the intensity heads by :mod:`ser_core.training.intensity`.
"""

from __future__ import annotations

import io
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import bundle
from ..bundle import AdaptedPart, Bundle, IntensityPart
from ..features import build_extractor
from ..inference.voice import Population
from .adapted import AdaptationConfig, Corpus, evaluate_adapted, fit_default_on, train_adapted
from .corpora import AugmentConfig, FeatureTable, extract_table, scan_emodb, scan_nemo, scan_ravdess, speech_seconds
from .fit import Fitted, TrainConfig, announce, cross_validate, fit_rows, random_split, stages
from .intensity import IntensityConfig, evaluate_intensity, train_intensity
from .networks import to_tflite
from .report import render_model_card

__all__ = ["train"]

log = logging.getLogger(__name__)

DEFAULT_ADAPTATION = AdaptationConfig()
DEFAULT_INTENSITY = IntensityConfig()


def confusion_png(confusion: list[list[int]], labels: tuple[str, ...], title: str) -> bytes:
    """A row-normalised confusion matrix as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in (
        "numpy",
        "librosa",
        "scikit-learn",
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "ai-edge-litert",
        "soxr",
        "soundfile",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _evaluate(
    files, extractor, config: TrainConfig, cache_dir: Path | None, *, degradations: tuple[str, ...]
) -> tuple[FeatureTable, dict, np.ndarray]:
    """Features (with augmented copies) of every file, then the speaker-independent evaluation.
    Also returns each row's probabilities from the fold that held it out (NaN for rows not scored)."""

    def table_for(augment: bool, degradation: str | None = None) -> FeatureTable:
        return extract_table(
            files,
            extractor=extractor,
            augment_config=config.augment_config if augment else None,
            random_seed=config.random_seed,
            cache_dir=cache_dir,
            n_jobs=config.jobs,
            degradation=degradation,
            preprocessing=config.preprocessing,
        )

    table = table_for(config.augment)
    held_out = np.full((len(table.features), len(config.emotions)), np.nan, np.float32)
    if not config.evaluate:
        return table, {}, held_out
    degraded = {name: table_for(False, name) for name in degradations}

    def keep(rows: np.ndarray, probs: np.ndarray) -> None:
        held_out[rows] = probs

    return (
        table,
        {
            "speaker_independent": cross_validate(table, config, degraded, on_scored=keep),
            "speaker_dependent_random_split": random_split(table, config),
        },
        held_out,
    )


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    cache_dir: Path | None,
    on_stage: Callable[[str], None] | None = None,
    emodb_dir: str | Path | None = None,
    nemo_dir: str | Path | None = None,
    adaptation: AdaptationConfig | None = DEFAULT_ADAPTATION,
    intensity: IntensityConfig | None = DEFAULT_INTENSITY,
) -> dict:
    """Extract features, evaluate speaker-independently, train on all speakers, write the bundle.

    ``data_dir`` is RAVDESS, which the default model learns from; ``emodb_dir`` and ``nemo_dir``
    (optional) add EmoDB and nEMO to the adapted model's training and to its cross-corpus
    evaluation. ``adaptation=None`` leaves the adapted model out, ``intensity=None`` the intensity model (trained on RAVDESS's labels only). ``on_stage``
    is called with the name of each stage as the run reaches it ("features", "fold 1/5", ...,
    "final model", "writing"); an exception it raises stops the run there, before anything is
    written. With ``config.compare_seed`` the seed design is evaluated the same way, for
    comparison. Returns the metrics written to ``metrics.json``.
    """
    with stages(on_stage):
        others = {name: Path(folder) for name, folder in (("EmoDB", emodb_dir), ("nEMO", nemo_dir)) if folder}
        return _train(data_dir, out_dir, config, cache_dir, others, adaptation, intensity)


def _train(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    cache_dir: Path | None,
    others: dict[str, Path],
    adaptation: AdaptationConfig | None,
    intensity: IntensityConfig | None,
) -> dict:
    started = time.perf_counter()
    files = scan_ravdess(data_dir, config.emotions)
    actors = sorted({f.actor for f in files})
    log.info("%d files from %d actors, classes %s", len(files), len(actors), list(config.emotions))
    extractor = build_extractor(config.features, n_samples=config.preprocessing.n_samples)
    announce("features")
    table, evaluation, held_out = _evaluate(files, extractor, config, cache_dir, degradations=config.degradations)
    metrics: dict = {
        "classes": list(config.emotions),
        "architecture": config.architecture,
        "features": config.features,
        "n_features": extractor.n_features,
        "data": {"files": len(files), "actors": actors, "rows_with_augmentation": int(len(table.features))},
        **evaluation,
    }
    if config.evaluate and config.compare_seed and not config.is_seed:
        seed_config = replace(config, architecture="seed", features="seed", augment_config=AugmentConfig.seed())
        seed_extractor = build_extractor("seed", n_samples=config.preprocessing.n_samples)
        _, seed_evaluation, _ = _evaluate(files, seed_extractor, seed_config, cache_dir, degradations=())
        metrics["seed"] = {"architecture": "seed", "features": "seed", **seed_evaluation}

    rows = np.flatnonzero(config.augment | ~table.augmented)
    final = fit_rows(table, rows, config, desc="final model")
    tflite = to_tflite(final.model)
    metrics["final_model"] = final.details
    metrics["model"] = {"parameters": int(final.model.count_params()), "tflite_bytes": len(tflite)}
    adaptation_settings, adapted = (
        _adapted(table, held_out, final, extractor, config, adaptation, others, cache_dir, metrics)
        if adaptation is not None
        else (None, None)
    )
    intensity_part = _intensity(table, held_out, config, intensity, metrics) if intensity is not None else None
    metrics["timing"] = {"total_seconds": round(time.perf_counter() - started, 1)}
    metrics["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    built = Bundle(
        labels=config.emotions,
        preprocessing=config.preprocessing.to_dict(),
        features=extractor.config.to_dict(),
        filters=extractor.filters,
        mean=final.mean,
        scale=final.scale,
        model=tflite,
        feature_names=tuple(extractor.names),
        training=config.to_dict(),
        versions=library_versions(),
        metrics=metrics,
        adaptation=adaptation_settings,
        adapted=adapted,
        intensity=intensity_part,
    )
    reports = {bundle.MODEL_CARD_MD: render_model_card(metrics, config.to_dict()).encode()}
    if "speaker_independent" in metrics:
        reports[bundle.CONFUSION_PNG] = confusion_png(
            metrics["speaker_independent"]["confusion"],
            config.emotions,
            f"{config.architecture} on {config.features} features: {config.folds}-fold by actor, summed over folds",
        )
    announce("writing")
    bundle.write(out_dir, built, keras=_keras_bytes(final.model), reports=reports)
    return metrics


def _adapted(
    table: FeatureTable,
    held_out: np.ndarray,
    final: Fitted,
    extractor,
    config: TrainConfig,
    adaptation: AdaptationConfig,
    others: dict[str, Path],
    cache_dir: Path | None,
    metrics: dict,
) -> tuple[dict, AdaptedPart]:
    """The adapted model (and its evaluation into ``metrics``): ``(its settings, the part)``.

    ``others`` names the folders of the other corpora (``{"EmoDB": ..., "nEMO": ...}``); the
    default model's cross-validation (``held_out``) and ``final`` model serve as its default
    verdicts in the evaluation."""
    corpora = [_corpus("RAVDESS", table, config, cache_dir)]
    for name, folder in others.items():
        files = SCANNERS[name](folder, config.emotions)
        other = extract_table(
            files, extractor=extractor, augment_config=config.augment_config if config.augment else None,
            random_seed=config.random_seed, cache_dir=cache_dir, n_jobs=config.jobs, preprocessing=config.preprocessing,
        )  # fmt: skip
        corpora.append(_corpus(name, other, config, cache_dir))
        metrics["data"][name.lower()] = {"files": len(files), "speakers": sorted({f.actor for f in files})}
    if config.evaluate:

        def fit_default(rest: list[Corpus]) -> Fitted:
            return fit_default_on(rest, config, desc=f"default model on {', '.join(c.name for c in rest)}")

        metrics["calibration"] = evaluate_adapted(
            corpora[0], corpora[1:], config, adaptation, held_out, final, fit_default
        )
    model, population = train_adapted(corpora, config, adaptation, desc="final adapted model")
    metrics["adapted_model"] = {**model.details, "corpora": [c.name for c in corpora]}
    part = AdaptedPart(
        to_tflite(model.model), model.mean, model.scale, {k: getattr(population, k) for k in Population.ARRAYS}
    )
    return {**adaptation.to_dict(), "corpora": [c.name for c in corpora]}, part


def _intensity(
    table: FeatureTable, held_out: np.ndarray, config: TrainConfig, intensity: IntensityConfig, metrics: dict
) -> IntensityPart | None:
    """The intensity model (and its evaluation into ``metrics``, weighted by the emotion model's
    ``held_out`` probabilities from its own cross-validation); ``None`` when the data has no
    emotion at both intensity levels."""
    fitted = train_intensity(table, config, intensity, desc="final intensity model")
    if fitted is None:
        log.warning("no emotion has recordings at both intensity levels: the bundle has no intensity model")
        return None
    model, details = fitted
    if config.evaluate:
        metrics["intensity"] = evaluate_intensity(table, held_out, config, intensity)
    metrics["intensity_model"] = {**details, "emotions": list(model.emotions)}
    settings = {"corpora": ["RAVDESS"], **intensity.to_dict()}
    return IntensityPart(model.emotions, model.weights, model.bias, model.mean, model.scale, settings)


def _keras_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / bundle.MODEL_KERAS
        model.save(path)
        return path.read_bytes()


SCANNERS = {"EmoDB": scan_emodb, "nEMO": scan_nemo}  # the corpora besides RAVDESS, by the name reports use


def _corpus(name: str, table: FeatureTable, config: TrainConfig, cache_dir: Path | None) -> Corpus:
    """Every row of a feature table (originals and augmented copies), with its file's seconds of speech."""
    seconds = speech_seconds(table.files, cache_dir=cache_dir, n_jobs=config.jobs, preprocessing=config.preprocessing)
    first = np.r_[True, table.file_index[1:] != table.file_index[:-1]]
    starts = np.flatnonzero(first)
    copies = np.arange(len(first)) - np.repeat(starts, np.diff(np.r_[starts, len(first)]))
    return Corpus(
        name,
        table.features,
        table.labels(config.emotions),
        table.actors(),
        table.file_index,
        copies,
        seconds[table.file_index],
    )
