"""Training and speaker-independent evaluation; builds the model bundle.

Protocol: k folds of whole actors. For each fold the network is trained on the other
actors' files and their augmented copies, and scored on the held-out actors' original
files only. No decision looks at a test fold: the schedule is fixed and the learning
rate follows the training loss. The original design's random 80/20 file split is
reported beside it, labelled speaker-dependent, to show how much of that figure is
the network recognising actors. The shipped model is then trained on every actor.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import audio
from .artifacts import CONFIG_JSON, FEATURES_NPZ, LABELS_TXT, METRICS_JSON, MODEL_KERAS, MODEL_TFLITE, write_bundle
from .classifier import EMOTIONS
from .datasets import AugmentConfig, FeatureTable, extract_table, scan_ravdess
from .errors import ParameterError
from .features import FEATURE_NAMES, FeatureExtractor
from .model import build_model, quiet_tensorflow, to_tflite
from .reporting import render_model_card

__all__ = ["TrainConfig", "train", "evaluate_predictions", "actor_folds", "ECE_BINS"]

log = logging.getLogger(__name__)

ECE_BINS = 15


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; written into the bundle."""

    architecture: str = "seed"
    emotions: tuple[str, ...] = EMOTIONS
    folds: int = 5
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = True
    random_split_test: float = 0.2
    seed: int = 42
    jobs: int = 2
    evaluate: bool = True
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if len(set(self.emotions)) != len(self.emotions) or len(self.emotions) < 2:
            raise ParameterError("Give at least two different emotions.")
        if self.folds < 2:
            raise ParameterError("Cross-validation needs at least 2 folds.")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ParameterError("epochs, batch size and learning rate must be positive.")
        if not 0.0 < self.random_split_test < 1.0:
            raise ParameterError("The random split's test share must lie between 0 and 1.")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["emotions"] = list(self.emotions)
        return out


# ---------------------------------------------------------------- metrics


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def evaluate_predictions(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, UAR, macro-F1, per-class recall, confusion matrix and ECE."""
    from sklearn.metrics import confusion_matrix, f1_score

    y_pred = probs.argmax(axis=1)
    classes = np.arange(len(labels))
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(labels)), where=support > 0)
    present = support > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "uar": float(recall[present].mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes[present], average="macro", zero_division=0)),
        "per_class_recall": {label: float(r) for label, r, p in zip(labels, recall, present) if p},
        "confusion": cm.tolist(),
        "ece": expected_calibration_error(y_true, probs),
    }


def actor_folds(actors: list[int], k: int) -> list[list[int]]:
    """Split sorted actors into ``k`` contiguous groups (20 actors, k=5: 1-4, 5-8, ...)."""
    actors = sorted(set(actors))
    if len(actors) < k:
        raise ParameterError(f"{k} folds need at least {k} actors; the data has {len(actors)}.")
    return [list(map(int, part)) for part in np.array_split(np.array(actors), k)]


# ---------------------------------------------------------------- fitting


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale (std, 1 where constant) of training rows. Shapes ``(n_features,)``."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean.astype(np.float32), np.where(scale > 1e-8, scale, 1.0).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, config: TrainConfig, *, desc: str):
    """Train one network on rows ``x`` (raw features) with labels ``y``.

    Returns ``(keras_model, mean, scale)``.
    """
    quiet_tensorflow()
    import keras
    from tqdm.auto import tqdm

    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    mean, scale = standardiser(x)
    model = build_model(config.architecture, x.shape[1], len(config.emotions), learning_rate=config.learning_rate)

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=config.epochs, desc=desc, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.3f}")
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    schedule = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=5, min_lr=1e-5)
    model.fit(
        (x - mean) / scale,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[schedule, Progress()],
    )
    return model, mean, scale


def keras_probabilities(model, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.asarray(model((x - mean) / scale, training=False))


def _train_and_score(table: FeatureTable, train_rows: np.ndarray, test_rows: np.ndarray, config: TrainConfig, desc: str) -> dict:
    y = table.labels(config.emotions)
    model, mean, scale = fit(table.features[train_rows], y[train_rows], config, desc=desc)
    probs = keras_probabilities(model, table.features[test_rows], mean, scale)
    return evaluate_predictions(y[test_rows], probs, config.emotions)


def cross_validate(table: FeatureTable, config: TrainConfig) -> dict:
    """Speaker-independent k-fold by actor: per fold, mean, and worst fold."""
    actors = table.actors()
    folds = []
    for i, test_actors in enumerate(actor_folds(actors.tolist(), config.folds)):
        held_out = np.isin(actors, test_actors)
        train_rows = np.flatnonzero(~held_out & (config.augment | ~table.augmented))
        test_rows = np.flatnonzero(held_out & ~table.augmented)
        result = _train_and_score(table, train_rows, test_rows, config, desc=f"fold {i + 1}/{config.folds}")
        result["test_actors"] = test_actors
        log.info("fold %d (actors %s): accuracy %.3f, UAR %.3f", i + 1, test_actors, result["accuracy"], result["uar"])
        folds.append(result)
    keys = ("accuracy", "uar", "macro_f1", "ece")
    worst = min(range(len(folds)), key=lambda i: folds[i]["uar"])
    return {
        "protocol": f"{config.folds}-fold cross-validation by actor; test folds never seen in training, augmented copies included",
        "folds": folds,
        "mean": {k: float(np.mean([f[k] for f in folds])) for k in keys},
        "std": {k: float(np.std([f[k] for f in folds])) for k in keys},
        "worst": {"fold": worst + 1, "test_actors": folds[worst]["test_actors"], "uar": folds[worst]["uar"],
                  "accuracy": folds[worst]["accuracy"]},
        "per_class_recall": {
            label: float(np.mean([f["per_class_recall"][label] for f in folds])) for label in config.emotions
        },
        "confusion": np.sum([f["confusion"] for f in folds], axis=0).tolist(),
    }


def random_split(table: FeatureTable, config: TrainConfig) -> dict:
    """The original design's random 80/20 file split: SPEAKER-DEPENDENT, for comparison only."""
    from sklearn.model_selection import train_test_split

    files = np.arange(len(table.files))
    strata = [table.files[i].emotion for i in files]
    train_files, test_files = train_test_split(
        files, test_size=config.random_split_test, random_state=config.seed, stratify=strata
    )
    in_train = np.isin(table.file_index, train_files)
    train_rows = np.flatnonzero(in_train & (config.augment | ~table.augmented))
    test_rows = np.flatnonzero(np.isin(table.file_index, test_files) & ~table.augmented)
    result = _train_and_score(table, train_rows, test_rows, config, desc="random split")
    result["protocol"] = "random 80/20 file split, stratified by emotion: SPEAKER-DEPENDENT (test actors also in training)"
    return result


# ---------------------------------------------------------------- the bundle


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
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "librosa", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "soxr", "soundfile"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def train(data_dir: str | Path, out_dir: str | Path, config: TrainConfig, *, cache_dir: Path | None) -> dict:
    """Extract features, evaluate speaker-independently, train on all actors, write the bundle.

    Returns the metrics written to ``metrics.json``.
    """
    started = time.perf_counter()
    files = scan_ravdess(data_dir, config.emotions)
    actors = sorted({f.actor for f in files})
    log.info("%d files from %d actors, classes %s", len(files), len(actors), list(config.emotions))
    extractor = FeatureExtractor.build()
    table = extract_table(
        files,
        extractor=extractor,
        augment_config=config.augment_config if config.augment else None,
        seed=config.seed,
        cache_dir=cache_dir,
        n_jobs=config.jobs,
    )
    feature_seconds = time.perf_counter() - started

    metrics: dict = {
        "classes": list(config.emotions),
        "architecture": config.architecture,
        "data": {"files": len(files), "actors": actors, "rows_with_augmentation": int(len(table.features))},
    }
    if config.evaluate:
        metrics["speaker_independent"] = cross_validate(table, config)
        metrics["speaker_dependent_random_split"] = random_split(table, config)

    rows = np.flatnonzero(config.augment | ~table.augmented)
    model, mean, scale = fit(table.features[rows], table.labels(config.emotions)[rows], config, desc="final model")
    tflite = to_tflite(model)
    total_seconds = time.perf_counter() - started
    metrics["timing"] = {"features_seconds": round(feature_seconds, 1), "total_seconds": round(total_seconds, 1)}
    metrics["model"] = {"parameters": int(model.count_params()), "tflite_bytes": len(tflite)}
    metrics["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")

    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / MODEL_KERAS
        model.save(keras_path)
        keras_bytes = keras_path.read_bytes()
    buffer = io.BytesIO()
    np.savez(buffer, mean=mean, scale=scale, **extractor.filters)
    config_json = {
        "labels": list(config.emotions),
        "preprocessing": {
            "sample_rate": audio.SAMPLE_RATE,
            "clip_seconds": audio.CLIP_SECONDS,
            "n_samples": audio.N_SAMPLES,
            "trim_top_db": audio.TRIM_TOP_DB,
            "trim_frame_length": audio.TRIM_FRAME_LENGTH,
            "trim_hop_length": audio.TRIM_HOP_LENGTH,
            "peak_level": audio.PEAK_LEVEL,
            "min_speech_seconds": audio.MIN_SPEECH_SECONDS,
        },
        "features": extractor.config.to_dict(),
        "feature_names": list(FEATURE_NAMES),
        "training": config.to_dict(),
        "versions": library_versions(),
    }
    files_out = {
        MODEL_TFLITE: tflite,
        MODEL_KERAS: keras_bytes,
        FEATURES_NPZ: buffer.getvalue(),
        LABELS_TXT: ("\n".join(config.emotions) + "\n").encode(),
        CONFIG_JSON: (json.dumps(config_json, indent=2) + "\n").encode(),
        METRICS_JSON: (json.dumps(metrics, indent=2) + "\n").encode(),
        "MODEL_CARD.md": render_model_card(metrics, config.to_dict()).encode(),
    }
    if "speaker_independent" in metrics:
        files_out["confusion_matrix.png"] = confusion_png(
            metrics["speaker_independent"]["confusion"],
            config.emotions,
            f"{config.architecture}: {config.folds}-fold by actor, summed over folds",
        )
    write_bundle(out_dir, files_out)
    return metrics
