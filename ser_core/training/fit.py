"""Training and speaker-independent evaluation of the default model (the bundle: :mod:`ser_core.training.build`).

Protocol: k folds of whole actors. For each fold the network is trained on the other
actors' files and their augmented copies, and scored on the held-out actors' original
files only. No decision looks at a test fold: the schedule is fixed and the learning
rate follows the training loss. The seed design's random 80/20 file split is
reported beside it, labelled speaker-dependent, to show how much of that figure is
the network recognising actors. The shipped model is then trained on every actor.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..audio import PREPROCESSING, Preprocessing
from ..emotions import EMOTIONS
from ..errors import ParameterError
from ..features import FEATURE_SETS
from .corpora import DEGRADATIONS, AugmentConfig, FeatureTable
from .networks import ARCHITECTURES, build_model, quiet_tensorflow

__all__ = [
    "TrainConfig",
    "evaluate_predictions",
    "actor_folds",
    "fit",
    "fit_rows",
    "cross_validate",
    "random_split",
    "stages",
    "ECE_BINS",
]

log = logging.getLogger(__name__)

ECE_BINS = 15
_ON_STAGE: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("on_stage", default=None)


@contextlib.contextmanager
def stages(on_stage: Callable[[str], None] | None) -> Iterator[None]:
    """Within this block, :func:`announce` also calls ``on_stage``."""
    token = _ON_STAGE.set(on_stage)
    try:
        yield
    finally:
        _ON_STAGE.reset(token)


def announce(stage: str) -> None:
    """Say which stage the run has reached: logged, and passed to ``train(on_stage=...)``."""
    log.info("stage: %s", stage)
    callback = _ON_STAGE.get()
    if callback is not None:
        callback(stage)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; written into the bundle."""

    architecture: str = "linear"
    features: str = "rich"
    emotions: tuple[str, ...] = EMOTIONS
    folds: int = 5
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = True
    random_split_test: float = 0.2
    random_seed: int = 42
    jobs: int = 2
    evaluate: bool = True
    compare_seed: bool = True  # also evaluate the seed design (seed features, seed network) beside it
    degradations: tuple[str, ...] = tuple(DEGRADATIONS)  # scored on the held-out folds
    c_grid: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3)  # linear: chosen on inner actor folds
    inner_folds: int = 4
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    preprocessing: Preprocessing = PREPROCESSING  # written into the bundle, which is served with it

    def __post_init__(self) -> None:
        if len(set(self.emotions)) != len(self.emotions) or len(self.emotions) < 2:
            raise ParameterError("Give at least two different emotions.")
        if self.folds < 2:
            raise ParameterError("Cross-validation needs at least 2 folds.")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ParameterError("epochs, batch size and learning rate must be positive.")
        if not 0.0 < self.random_split_test < 1.0:
            raise ParameterError("The random split's test share must lie between 0 and 1.")
        if self.features not in FEATURE_SETS:
            raise ParameterError(f"Unknown feature set '{self.features}'; choose one of {list(FEATURE_SETS)}.")
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"Unknown architecture '{self.architecture}'; choose one of {sorted(ARCHITECTURES)}.")
        unknown = set(self.degradations) - set(DEGRADATIONS)
        if unknown:
            raise ParameterError(f"Unknown degradations {sorted(unknown)}; choose from {sorted(DEGRADATIONS)}.")
        if not self.c_grid or min(self.c_grid) <= 0 or self.inner_folds < 2:
            raise ParameterError("The C grid must hold positive values and inner folds must be at least 2.")

    @property
    def is_seed(self) -> bool:
        """True for the seed design itself, which needs no comparison with itself."""
        return self.architecture == "seed" and self.features == "seed"

    def to_dict(self) -> dict:
        """The run's settings as the bundle's ``training`` section (the preprocessing has its own)."""
        out = asdict(self)
        out["emotions"] = list(self.emotions)
        del out["preprocessing"]
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
        "per_class_recall": {label: float(r) for label, r, p in zip(labels, recall, present, strict=False) if p},
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


@dataclass(frozen=True)
class Fitted:
    """A trained model: the Keras network, the standardisation of its input (raw features), and
    what was chosen on the way (``details``: C, temperature, inner scores)."""

    model: Any  # keras.Model
    mean: np.ndarray
    scale: np.ndarray
    details: dict

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of raw feature rows. ``(b, n_features) -> (b, classes)``."""
        return np.asarray(self.model((x - self.mean) / self.scale, training=False))


def fit(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, augmented: np.ndarray, config: TrainConfig, *, desc: str
) -> Fitted:
    """Train the configured model on rows ``x`` (raw features) with labels ``y``.

    ``groups`` (actor of each row) and ``augmented`` let the linear model choose its
    regularisation and temperature on inner actor folds of these rows alone.
    """
    announce(desc)
    mean, scale = standardiser(x)
    z = (x - mean) / scale
    if config.architecture == "linear":
        model, details = _fit_linear(z, y, groups, augmented, config, desc=desc)
    else:
        model, details = _fit_network(z, y, config, desc=desc)
    return Fitted(model, mean, scale, details)


def fit_rows(table: FeatureTable, rows: np.ndarray, config: TrainConfig, *, desc: str) -> Fitted:
    """:func:`fit` on ``rows`` of ``table`` (their labels, actors and augmented flags)."""
    return fit(
        table.features[rows],
        table.labels(config.emotions)[rows],
        table.actors()[rows],
        table.augmented[rows],
        config,
        desc=desc,
    )


def _fit_network(z: np.ndarray, y: np.ndarray, config: TrainConfig, *, desc: str):
    """Adam with the learning rate halved when the training loss stalls; fixed epochs, no peeking."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    keras.utils.set_random_seed(config.random_seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(config.architecture, z.shape[1], len(config.emotions), learning_rate=config.learning_rate)

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
        z,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[schedule, Progress()],
    )
    return model, {}


def _logistic_regression(z: np.ndarray, y: np.ndarray, c: float):
    """Class-balanced multinomial logistic regression with inverse regularisation ``c``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z, y)


def class_logits(model, z: np.ndarray, n_classes: int) -> np.ndarray:
    """Logits for every class, also when a class was missing from a (tiny) training set."""
    out = np.full((len(z), n_classes), -1e9)
    out[:, model.classes_] = (
        model.decision_function(z)
        if len(model.classes_) > 2
        else np.c_[-model.decision_function(z), model.decision_function(z)] / 2
    )
    return out


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out logits (grid search)."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(10.0), 200))

    def nll(t: float) -> float:
        scaled = logits / t
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(scaled).sum(axis=1)) - scaled[np.arange(len(y)), y]))

    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def softmax_network(regression, temperature: float, n_classes: int):
    """The Keras ``linear`` network of a fitted scikit-learn logistic regression, its logits divided
    by ``temperature``; a class absent from training gets a bias of -30, so it is never chosen."""
    weights = np.zeros((regression.coef_.shape[1], n_classes), np.float32)
    bias = np.full(n_classes, -30.0, np.float32)
    weights[:, regression.classes_] = regression.coef_.T / temperature
    bias[regression.classes_] = regression.intercept_ / temperature
    model = build_model("linear", len(weights), n_classes)
    model.set_weights([weights, bias])
    return model


def _fit_linear(
    z: np.ndarray, y: np.ndarray, groups: np.ndarray, augmented: np.ndarray, config: TrainConfig, *, desc: str
):
    """Class-balanced multinomial logistic regression, C and temperature chosen on inner actor folds.

    Inner validation uses original recordings of the inner held-out actors only; the outer
    test fold is never seen. The temperature is folded into the weights of a softmax layer.
    """
    from tqdm.auto import tqdm

    n_classes = len(config.emotions)
    inner = actor_folds(groups.tolist(), min(config.inner_folds, len(set(groups.tolist()))))
    scores, oof = {}, {}
    with tqdm(total=len(config.c_grid) * len(inner), desc=f"{desc}: choosing C", leave=False) as bar:
        for c in config.c_grid:
            logits = np.zeros((len(z), n_classes))
            recalls = []
            for held_actors in inner:
                held = np.isin(groups, held_actors)
                valid = held & ~augmented
                model = _logistic_regression(z[~held], y[~held], c)
                logits[valid] = class_logits(model, z[valid], n_classes)
                recalls.append(evaluate_predictions(y[valid], logits[valid], config.emotions)["uar"])
                bar.update(1)
            scores[c], oof[c] = float(np.mean(recalls)), logits
    best = max(config.c_grid, key=lambda c: scores[c])
    originals = ~augmented
    temperature = fit_temperature(oof[best][originals], y[originals])
    model = softmax_network(_logistic_regression(z, y, best), temperature, n_classes)
    return model, {"c": best, "temperature": temperature, "inner_uar_by_c": {str(c): v for c, v in scores.items()}}


def _train_and_score(
    table: FeatureTable,
    train_rows: np.ndarray,
    test_files: np.ndarray,
    config: TrainConfig,
    desc: str,
    degraded: dict[str, FeatureTable] | None = None,
    on_scored: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict:
    """Fit on ``train_rows``; score the original recordings of ``test_files`` (and their degraded versions).
    ``on_scored`` receives the scored rows of ``table`` and their probabilities."""
    y = table.labels(config.emotions)
    fitted = fit_rows(table, train_rows, config, desc=desc)
    test_rows = np.flatnonzero(np.isin(table.file_index, test_files) & ~table.augmented)
    probs = fitted.probabilities(table.features[test_rows])
    if on_scored is not None:
        on_scored(test_rows, probs)
    result = evaluate_predictions(y[test_rows], probs, config.emotions)
    result.update(fitted.details)
    for name, other in (degraded or {}).items():
        rows = np.flatnonzero(np.isin(other.file_index, test_files))
        probs = fitted.probabilities(other.features[rows])
        scored = evaluate_predictions(other.labels(config.emotions)[rows], probs, config.emotions)
        result.setdefault("degraded", {})[name] = {k: scored[k] for k in ("accuracy", "uar", "macro_f1", "ece")}
    return result


def cross_validate(
    table: FeatureTable,
    config: TrainConfig,
    degraded: dict[str, FeatureTable] | None = None,
    *,
    on_scored: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict:
    """Speaker-independent k-fold by actor: per fold, mean, and worst fold; degraded audio too.
    ``on_scored`` receives each fold's scored rows of ``table`` and their probabilities."""
    actors = table.actors()
    file_actors = np.array([f.actor for f in table.files])
    folds = []
    for i, test_actors in enumerate(actor_folds(actors.tolist(), config.folds)):
        held_out = np.isin(actors, test_actors)
        train_rows = np.flatnonzero(~held_out & (config.augment | ~table.augmented))
        test_files = np.flatnonzero(np.isin(file_actors, test_actors))
        result = _train_and_score(
            table, train_rows, test_files, config, f"fold {i + 1}/{config.folds}", degraded, on_scored
        )
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
        "worst": {
            "fold": worst + 1,
            "test_actors": folds[worst]["test_actors"],
            "uar": folds[worst]["uar"],
            "accuracy": folds[worst]["accuracy"],
        },
        "per_class_recall": {
            label: float(np.mean([f["per_class_recall"][label] for f in folds])) for label in config.emotions
        },
        "confusion": np.sum([f["confusion"] for f in folds], axis=0).tolist(),
        "degraded": {
            name: {k: float(np.mean([f["degraded"][name][k] for f in folds])) for k in keys}
            for name in (degraded or {})
        },
    }


def random_split(table: FeatureTable, config: TrainConfig) -> dict:
    """The seed design's random 80/20 file split: SPEAKER-DEPENDENT, for comparison only."""
    from sklearn.model_selection import train_test_split

    files = np.arange(len(table.files))
    strata = [table.files[i].emotion for i in files]
    train_files, test_files = train_test_split(
        files, test_size=config.random_split_test, random_state=config.random_seed, stratify=strata
    )
    in_train = np.isin(table.file_index, train_files)
    train_rows = np.flatnonzero(in_train & (config.augment | ~table.augmented))
    result = _train_and_score(table, train_rows, test_files, config, desc="random split")
    result["protocol"] = (
        "random 80/20 file split, stratified by emotion: SPEAKER-DEPENDENT (test actors also in training)"
    )
    return result
