"""Evaluation metrics with the names users grep for (mmaction2 / CLIP_benchmark conventions).

Classification: ``top1``, ``top5``, ``mean_class_acc``, macro-F1 (percent). Regression: ``mae``, ``rmse`` (in
the target's units), temporal accuracy@δ (percent within δ). Retrieval: ``R@1``, ``R@5``, ``R@10``
(percent), ``MdR``, ``MnR`` (ranks, 1 = best).

Retrieval tie policy: the rank of the true item is 1 + the number of candidates scoring
*strictly higher*, so ties are resolved in the query's favour (optimistic), as in most
CLIP retrieval code. Stated in every retrieval result.
"""

from __future__ import annotations

import numpy as np
import torch

RETRIEVAL_TIE_POLICY = "optimistic: rank = 1 + number of candidates scoring strictly higher"


def _as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values)


def topk_accuracy(scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, k: int = 1) -> float:
    """Percent of rows whose target is among the ``k`` highest scores.

    Args:
        scores: ``[N, C]`` class scores (logits or probabilities).
        targets: ``[N]`` integer class indices.
        k: clipped to the number of classes (top-5 of a 3-class problem is top-3 = 100 %).
    """
    scores, targets = _as_numpy(scores), _as_numpy(targets).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise ValueError(f"scores must be [N, C] and targets [N]; got {scores.shape} and {targets.shape}")
    if len(targets) == 0:
        raise ValueError("no samples to score")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean() * 100.0)


def mean_class_accuracy(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray) -> float:
    """Mean over the classes present in ``targets`` of per-class recall, in percent."""
    predictions, targets = _as_numpy(predictions).astype(np.int64), _as_numpy(targets).astype(np.int64)
    classes = np.unique(targets)
    return float(np.mean([(predictions[targets == c] == c).mean() for c in classes]) * 100.0)


def per_class_accuracy(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
                       num_classes: int) -> np.ndarray:
    """``[num_classes]`` recall in percent per class (NaN for classes absent from ``targets``)."""
    predictions, targets = _as_numpy(predictions).astype(np.int64), _as_numpy(targets).astype(np.int64)
    result = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = targets == c
        if mask.any():
            result[c] = (predictions[mask] == c).mean() * 100.0
    return result


def confusion_matrix(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``int64 [num_classes, num_classes]``: rows are true classes, columns predicted classes."""
    predictions, targets = _as_numpy(predictions).astype(np.int64), _as_numpy(targets).astype(np.int64)
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must be class indices in [0, {num_classes}); drop unlabelled (-1) rows first")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix


def classification_metrics(scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray
                           ) -> dict[str, float]:
    """``top1``, ``top5`` and ``mean_class_acc`` (percent) from ``[N, C]`` scores and ``[N]`` targets."""
    predictions = _as_numpy(scores).argmax(axis=1)
    return {
        "top1": topk_accuracy(scores, targets, 1),
        "top5": topk_accuracy(scores, targets, 5),
        "mean_class_acc": mean_class_accuracy(predictions, targets),
    }


def regression_metrics(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray
                       ) -> dict[str, float]:
    """``mae`` and ``rmse`` in the targets' units, from ``[N]`` predictions and targets."""
    predictions, targets = _as_numpy(predictions).astype(np.float64), _as_numpy(targets).astype(np.float64)
    if predictions.shape != targets.shape or predictions.size == 0:
        raise ValueError(f"predictions and targets must be equal non-empty shapes; got "
                         f"{predictions.shape} and {targets.shape}")
    error = predictions - targets
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))}


def retrieval_ranks(similarity: torch.Tensor | np.ndarray, positives: torch.Tensor | np.ndarray | None = None
                    ) -> np.ndarray:
    """1-based rank of each query's best-ranked positive candidate.

    Args:
        similarity: ``[Q, N]`` query-by-candidate scores.
        positives: ``[Q]`` index of each query's matching candidate (default: the diagonal,
            ``positives[i] = i``, which needs Q <= N).
    """
    similarity = _as_numpy(similarity).astype(np.float64)
    queries = similarity.shape[0]
    positives = np.arange(queries) if positives is None else _as_numpy(positives).astype(np.int64)
    true_scores = similarity[np.arange(queries), positives]
    return (similarity > true_scores[:, None]).sum(axis=1) + 1


def retrieval_metrics(similarity: torch.Tensor | np.ndarray, positives: torch.Tensor | np.ndarray | None = None,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """``R@k`` (percent of queries whose positive ranks within k), ``MdR`` and ``MnR`` (ranks).

    See :data:`RETRIEVAL_TIE_POLICY` for how ties are ranked.
    """
    ranks = retrieval_ranks(similarity, positives)
    result = {f"R@{k}": float((ranks <= k).mean() * 100.0) for k in ks}
    result["MdR"] = float(np.median(ranks))
    result["MnR"] = float(ranks.mean())
    return result


def macro_f1(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, num_classes: int) -> float:
    """Mean over the classes present in ``targets`` or ``predictions`` of per-class F1, in percent.

    A class with no true and no predicted sample is left out; one that is predicted but never true
    (or the reverse) counts with F1 = 0.
    """
    predictions, targets = _as_numpy(predictions).astype(np.int64), _as_numpy(targets).astype(np.int64)
    if predictions.shape != targets.shape or predictions.size == 0:
        raise ValueError(f"predictions and targets must be equal non-empty shapes; got "
                         f"{predictions.shape} and {targets.shape}")
    scores = []
    for c in range(num_classes):
        true_positive = float(((predictions == c) & (targets == c)).sum())
        predicted, actual = float((predictions == c).sum()), float((targets == c).sum())
        if predicted + actual:
            scores.append(2 * true_positive / (predicted + actual))
    return float(np.mean(scores) * 100.0)


def temporal_accuracy(predictions: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
                      delta: float) -> float:
    """Percent of samples whose time error ``|prediction − target|`` is at most ``delta`` (same units)."""
    predictions, targets = _as_numpy(predictions).astype(np.float64), _as_numpy(targets).astype(np.float64)
    if predictions.shape != targets.shape or predictions.size == 0:
        raise ValueError(f"predictions and targets must be equal non-empty shapes; got "
                         f"{predictions.shape} and {targets.shape}")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    return float((np.abs(predictions - targets) <= delta).mean() * 100.0)
