"""Linear probe on frozen features: CLIP's logistic-regression protocol.

Features are standardised, a multinomial logistic regression (L2 penalty, scikit-learn's objective) is
fitted for each inverse regularisation strength ``C`` of a sweep — by scikit-learn's ``LogisticRegression``
(the default and the reference), or with ``solver="torch"`` by the warm-started L-BFGS of
:mod:`~chronoclip.eval.softmax_probe` (on the GPU when there is one; not yet the default: where the training
rows are separable, at large ``C``, it can choose another ``C`` than scikit-learn, see docs/evaluation.md) —
the ``C`` with the best accuracy on a held-out split is kept, and the classifier is refit on
train + held-out data before the test set is scored (Radford et al. 2021, appendix A.3). The sweep
matters: probe numbers fall short of published ones without it (CLIP_benchmark PR #107).

- The held-out split is the given validation features, or else a stratified hold-out of the
  training rows (grouped by item id, so crops of one item never straddle it) with a fixed seed.
- The sweep is a coarse logarithmic grid followed by ``refine_steps`` bisections (in log space)
  around the best value. Ties in held-out accuracy go to the lower held-out log-loss, so clean data
  keeps a weakly regularised (large ``C``) model and noisy data a strongly regularised one.
- Test rows that share an item id (several crops or clips of one sample) have their predicted
  probabilities averaged before scoring.
- :func:`evaluate_linear_probe_folds` runs the protocol over given folds (ESC-50's 5 folds, or official
  splits) and reports the mean, the standard deviation and every fold.

- [0] CLIP, 2021, https://arxiv.org/abs/2103.00020
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from chronoclip.config import require_one_of
from chronoclip.errors import ConfigError
from chronoclip.eval.metrics import classification_metrics
from chronoclip.eval.softmax_probe import SoftmaxPath, SoftmaxProbe, probe_device
from chronoclip.eval.views import average_by_item

log = logging.getLogger(__name__)

Array = torch.Tensor | np.ndarray
Estimator = TypeVar("Estimator", LogisticRegression, Pipeline)
METRIC_KEYS = ("top1", "top5", "mean_class_acc")
SOLVERS = ("torch", "sklearn")
CLASSIFIERS = {
    "torch": "multinomial logistic regression, L2 (scikit-learn's objective), torch full-batch L-BFGS "
             "warm-started along the C path, on standardised features",
    "sklearn": "scikit-learn LogisticRegression (lbfgs, multinomial, L2) on standardised features",
}
SELECTION = ("best held-out top1 over the C sweep (ties: lower held-out log-loss), "
             "then refit on train + held-out")


@dataclass(frozen=True)
class ProbeSettings:
    """How the probe is fitted and its regularisation chosen.

    Attributes:
        Cs: coarse grid of inverse L2 strengths (default: 1e-6 ... 1e6, one per decade, CLIP's range).
        refine_steps: bisections of the log-spaced step around the best coarse ``C``.
        val_fraction: share of training items held out when no validation features are given.
        seed: seed of that hold-out.
        max_iter: lbfgs iterations per fit.
        tol: a fit stops when every gradient entry of the (mean) objective is below it (scikit-learn's).
        solver: ``sklearn`` (the reference) or ``torch`` (warm-started L-BFGS, faster; see the module doc).
        device: where the ``torch`` solver runs: ``auto`` (a GPU if present), ``cpu`` or ``cuda``.
    """

    Cs: tuple[float, ...] = tuple(10.0**e for e in range(-6, 7))
    refine_steps: int = 2
    val_fraction: float = 0.2
    seed: int = 0
    max_iter: int = 1000
    tol: float = 1e-4
    solver: str = "sklearn"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.Cs or min(self.Cs) <= 0:
            raise ConfigError(f"Cs must be a non-empty sequence of positive numbers; got {self.Cs}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1); got {self.val_fraction}")
        if self.refine_steps < 0 or self.max_iter < 1 or self.tol <= 0:
            raise ConfigError(f"refine_steps must be >= 0, max_iter >= 1 and tol > 0; got {self.refine_steps}, "
                             f"{self.max_iter}, {self.tol}")
        require_one_of({"solver": (self.solver, SOLVERS), "device": (self.device, ("auto", "cpu", "cuda"))})

    @property
    def classifier(self) -> str:
        """What fits the probe, for the result's protocol."""
        return CLASSIFIERS[self.solver]

    @property
    def holdout_folds(self) -> int:
        """The hold-out is one of this many stratified folds of the training items."""
        return max(2, round(1 / self.val_fraction))


@dataclass
class ProbeFit:
    """A fitted probe: the refit model, the chosen ``C`` and the sweep that chose it."""

    model: Pipeline | SoftmaxProbe
    best_C: float
    sweep: list[dict[str, float]]
    num_classes: int
    train_samples: int
    val_samples: int
    holdout: str
    seconds: float

    def predict_proba(self, features: Array) -> np.ndarray:
        """``[N, num_classes]`` class probabilities (zero for classes never seen in training)."""
        return _proba(self.model, _numpy(features), self.num_classes)


def _numpy(values: Array | Sequence[Any]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _labels(values: Array) -> np.ndarray:
    labels = _numpy(values).astype(np.int64)
    if labels.ndim != 1 or (labels.size and labels.min() < 0):
        raise ValueError(f"targets must be a 1-d array of class indices >= 0; got shape {labels.shape}")
    return labels


def _check_pair(features: np.ndarray, labels: np.ndarray, name: str) -> None:
    if features.ndim != 2 or len(features) != len(labels) or not len(labels):
        raise ValueError(f"{name} features must be [N, D] with N = len(targets) > 0; got {features.shape} "
                         f"and {labels.shape}")


def _holdout(labels: np.ndarray, groups: np.ndarray, settings: ProbeSettings
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """Stratified, item-grouped split of training rows into (fit, held-out) index arrays, and the
    number of folds the held-out rows are one of.

    The held-out share is 1 / ``holdout_folds``, or 1 / (items of the largest class) when every class
    has fewer items than that (a tiny training set), so the split always exists.
    """
    items_per_class = np.unique(np.stack([labels, groups]), axis=1)[0]
    largest = int(np.bincount(items_per_class).max())
    if largest < 2:
        raise ValueError("the probe's C is chosen on held-out training items: give at least one class two or "
                         "more training items")
    folds = min(settings.holdout_folds, largest)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=settings.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members than..."
        fit_rows, held_rows = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return fit_rows, held_rows, folds


def _log_loss(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at 1e-15)."""
    return float(-np.log(np.clip(proba[np.arange(len(labels)), labels], 1e-15, None)).mean())


def _fit(estimator: Estimator, features: np.ndarray, labels: np.ndarray) -> Estimator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the sweep records iterations == max_iter
        estimator.fit(features, labels)
    return estimator


def _proba(estimator: LogisticRegression | Pipeline | SoftmaxProbe, features: np.ndarray, num_classes: int
           ) -> np.ndarray:
    """``[N, num_classes]`` probabilities; columns of classes the estimator never saw stay zero."""
    proba = estimator.predict_proba(features)
    full = np.zeros((len(features), num_classes), dtype=np.float64)
    full[:, estimator.classes_] = proba
    return full


class _Fitter:
    """Fits of one training set for any ``C``, by ``settings.solver``: :meth:`fit` returns the classifier
    (taking raw features) and its iterations.

    The ``torch`` solver keeps its :class:`SoftmaxPath` (:attr:`path`), so each fit warm-starts from the
    nearest ``C`` solved; ``warm`` is another fitter whose solution for the same ``C`` starts a fit (the
    refit on train + held-out data starts from the sweep's solution).
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, settings: ProbeSettings,
                 warm: _Fitter | None = None) -> None:
        self.features, self.labels, self.settings, self.warm = features, labels, settings, warm
        self.path = None if settings.solver == "sklearn" else SoftmaxPath(
            features, labels, probe_device(settings.device), settings.max_iter, settings.tol)

    def fit(self, C: float) -> tuple[Pipeline | SoftmaxProbe, int]:
        if self.path is None:
            model = _fit(make_pipeline(StandardScaler(), LogisticRegression(
                C=C, max_iter=self.settings.max_iter, tol=self.settings.tol)), self.features, self.labels)
            return model, int(model[-1].n_iter_.max())
        start = self.warm.path.solved.get(C) if self.warm is not None and self.warm.path is not None else None
        probe = self.path.fit(C, start)
        return probe, probe.iterations


def _test_views(by_item: bool) -> str:
    return "probabilities averaged over rows sharing an item id" if by_item else "one row per sample"


def fit_linear_probe(train_features: Array, train_targets: Array,
                     val_features: Array | None = None, val_targets: Array | None = None, *,
                     train_item_ids: Array | None = None, num_classes: int | None = None,
                     settings: ProbeSettings | None = None) -> ProbeFit:
    """Sweep ``C`` on a held-out split, then refit on train + held-out data with the best ``C``.

    Args:
        train_features: ``[N, D]`` frozen features.
        train_targets: ``[N]`` class indices.
        val_features / val_targets: ``[M, D]`` / ``[M]`` held-out data for the sweep; when absent,
            a stratified share ``settings.val_fraction`` of the training items is held out.
        train_item_ids: ``[N]`` item of each training row (rows of one item stay on one side of
            the hold-out); default: every row its own item.
        num_classes: width of :meth:`ProbeFit.predict_proba` (default: largest label + 1).
        settings: grid, hold-out and solver settings.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.arange(200) % 4
        >>> features = rng.normal(size=(200, 8)) + 3 * np.eye(8)[labels]
        >>> fit = fit_linear_probe(features, labels)
        >>> fit.predict_proba(features).shape
        (200, 4)
    """
    settings = settings or ProbeSettings()
    started = time.perf_counter()
    features, labels = _numpy(train_features), _labels(train_targets)
    _check_pair(features, labels, "train")
    if (val_features is None) != (val_targets is None):
        raise ValueError("give both val_features and val_targets, or neither")
    if val_features is not None and val_targets is not None:
        held_features, held_labels = _numpy(val_features), _labels(val_targets)
        _check_pair(held_features, held_labels, "val")
        fit_features, fit_labels = features, labels
        holdout = "given validation split"
    else:
        groups = np.arange(len(labels)) if train_item_ids is None else _numpy(train_item_ids)
        fit_rows, held_rows, folds = _holdout(labels, groups, settings)
        fit_features, fit_labels = features[fit_rows], labels[fit_rows]
        held_features, held_labels = features[held_rows], labels[held_rows]
        holdout = (f"stratified hold-out of 1/{folds} of the training items, "
                   f"seed {settings.seed}")
    num_classes = num_classes or int(max(labels.max(), held_labels.max())) + 1

    fitter = _Fitter(fit_features, fit_labels, settings)
    sweep: dict[float, dict[str, float]] = {}

    def evaluate(C: float) -> None:
        if C in sweep:
            return
        classifier, iterations = fitter.fit(C)
        proba = _proba(classifier, held_features, num_classes)
        sweep[C] = {"C": C, "val_top1": float((proba.argmax(1) == held_labels).mean() * 100.0),
                    "val_log_loss": _log_loss(proba, held_labels), "iterations": iterations}
        log.debug("probe C=%.3g: val top1 %.2f, log-loss %.4f, %d iterations", C, sweep[C]["val_top1"],
                  sweep[C]["val_log_loss"], sweep[C]["iterations"])

    def best() -> float:
        return min(sweep.values(), key=lambda row: (-row["val_top1"], row["val_log_loss"]))["C"]

    grid = sorted(settings.Cs)
    for C in grid:
        evaluate(C)
    step = float(np.diff(np.log10(grid)).min()) if len(grid) > 1 else 1.0
    for _ in range(settings.refine_steps):
        step /= 2
        centre = best()
        for C in (centre * 10**-step, centre * 10**step):
            evaluate(C)
    best_C = best()

    all_features = np.concatenate([fit_features, held_features])
    all_labels = np.concatenate([fit_labels, held_labels])
    model, _ = _Fitter(all_features, all_labels, settings, warm=fitter).fit(best_C)
    seconds = time.perf_counter() - started
    log.info("linear probe: best C=%.3g (val top1 %.2f) of %d values, %d train + %d held-out rows, %.1f s",
             best_C, sweep[best_C]["val_top1"], len(sweep), len(fit_labels), len(held_labels), seconds)
    return ProbeFit(model=model, best_C=best_C, sweep=sorted(sweep.values(), key=lambda row: row["C"]),
                    num_classes=num_classes, train_samples=len(fit_labels), val_samples=len(held_labels),
                    holdout=holdout, seconds=seconds)


def evaluate_linear_probe(train_features: Array, train_targets: Array, test_features: Array,
                          test_targets: Array, *, val_features: Array | None = None,
                          val_targets: Array | None = None, train_item_ids: Array | None = None,
                          test_item_ids: Array | None = None, settings: ProbeSettings | None = None,
                          protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """CLIP's linear-probe protocol: ``top1``, ``top5``, ``mean_class_acc`` (percent) on the test set.

    Args:
        train_features / train_targets: ``[N, D]`` / ``[N]``.
        test_features / test_targets: ``[R, D]`` / ``[R]`` test rows.
        val_features / val_targets: optional held-out data for the ``C`` sweep
            (see :func:`fit_linear_probe`).
        train_item_ids: ``[N]`` item of each training row, for a grouped hold-out.
        test_item_ids: ``[R]`` item of each test row; rows of one item (its crops or clips) have
            their probabilities averaged and count as one test sample.
        settings: grid, hold-out and solver settings.
        protocol: extra entries for the result's ``protocol`` (e.g. ``split``, ``dataset``).

    Returns:
        ``{"top1", "top5", "mean_class_acc", "best_C", "sweep": [{"C", "val_top1", "val_log_loss",
        "iterations"}], "protocol": {...}}``

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.arange(300) % 3
        >>> features = rng.normal(size=(300, 16)) + 4 * np.eye(16)[labels]
        >>> result = evaluate_linear_probe(features[:200], labels[:200], features[200:], labels[200:])
        >>> result["top1"]
        100.0
    """
    settings = settings or ProbeSettings()
    test_x, test_y = _numpy(test_features), _labels(test_targets)
    _check_pair(test_x, test_y, "test")
    labels_seen = [_labels(train_targets), test_y] + ([] if val_targets is None else [_labels(val_targets)])
    num_classes = int(max(part.max() for part in labels_seen)) + 1
    fit = fit_linear_probe(train_features, train_targets, val_features, val_targets,
                           train_item_ids=train_item_ids, num_classes=num_classes, settings=settings)
    proba = torch.from_numpy(fit.predict_proba(test_x))
    targets = torch.from_numpy(test_y)
    if test_item_ids is not None:
        ids = _numpy(test_item_ids)
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        if not np.array_equal(test_y[first][inverse], test_y):
            raise ValueError("test rows that share an item id have different targets")
        _, proba = average_by_item(proba, torch.from_numpy(inverse))
        targets = targets[first]
    result: dict[str, Any] = classification_metrics(proba, targets)
    result["best_C"] = fit.best_C
    result["sweep"] = fit.sweep
    result["protocol"] = {
        "task": "linear_probe",
        "classifier": settings.classifier, "selection": SELECTION,
        "holdout": fit.holdout, "train_samples": fit.train_samples, "val_samples": fit.val_samples,
        "test_rows": len(test_y), "test_samples": len(targets), "num_classes": num_classes,
        "test_views": _test_views(test_item_ids is not None),
        **asdict(settings), **(protocol or {}),
    }
    return result


def evaluate_linear_probe_folds(features: Array, targets: Array, folds: Array | Sequence[int], *,
                                item_ids: Array | None = None, settings: ProbeSettings | None = None,
                                protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """k-fold linear probe over given folds: each fold is tested once, trained on the others.

    For data sets with official folds (ESC-50: 5 folds) or splits. Within each round, ``C`` is
    chosen on a hold-out of the training folds (:func:`fit_linear_probe`), never on the test fold.

    Args:
        features: ``[N, D]`` rows of every fold.
        targets: ``[N]`` class indices.
        folds: ``[N]`` fold id of each row.
        item_ids: ``[N]`` item of each row; test rows of one item are averaged (see
            :func:`evaluate_linear_probe`) and training rows of one item kept on one side of the hold-out.
        settings: grid, hold-out and solver settings.
        protocol: extra entries for the result's ``protocol``.

    Returns:
        ``{"top1", "top1_std", "top5", "top5_std", "mean_class_acc", "mean_class_acc_std",
        "per_fold": [{"fold", "top1", "top5", "mean_class_acc", "best_C", "sweep"}], "protocol"}``:
        means and population standard deviations (ddof 0) over folds.
    """
    settings = settings or ProbeSettings()
    x, y, fold_ids = _numpy(features), _labels(targets), _numpy(folds)
    _check_pair(x, y, "fold")
    if fold_ids.shape != y.shape:
        raise ValueError(f"folds must be [N] like targets; got {fold_ids.shape} and {y.shape}")
    items = None if item_ids is None else _numpy(item_ids)
    unique_folds = np.unique(fold_ids)
    if len(unique_folds) < 2:
        raise ValueError(f"need at least 2 folds; got {unique_folds.tolist()}")
    per_fold = []
    for fold in unique_folds:
        test, train = fold_ids == fold, fold_ids != fold
        fold_result = evaluate_linear_probe(
            x[train], y[train], x[test], y[test], settings=settings,
            train_item_ids=None if items is None else items[train],
            test_item_ids=None if items is None else items[test])
        kept = (*METRIC_KEYS, "best_C", "sweep")
        per_fold.append({"fold": fold.item(), **{key: fold_result[key] for key in kept}})
        log.info("fold %s: top1 %.2f (C=%.3g)", fold, fold_result["top1"], fold_result["best_C"])
    result: dict[str, Any] = {}
    for key in METRIC_KEYS:
        values = np.array([row[key] for row in per_fold])
        result[key], result[f"{key}_std"] = float(values.mean()), float(values.std())
    result["per_fold"] = per_fold
    result["protocol"] = {
        "task": "linear_probe", "classifier": settings.classifier, "selection": SELECTION,
        "evaluation": f"{len(unique_folds)}-fold cross-validation over given folds",
        "folds": [fold.item() for fold in unique_folds], "aggregate": "mean and std (ddof 0) over folds",
        "samples": len(y), "num_classes": int(y.max()) + 1,
        "test_views": _test_views(items is not None),
        **asdict(settings), **(protocol or {}),
    }
    return result
