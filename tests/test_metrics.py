"""Metrics against scikit-learn and hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from chronoclip.eval.metrics import (
    classification_metrics,
    confusion_matrix,
    per_class_accuracy,
    regression_metrics,
    retrieval_metrics,
    retrieval_ranks,
    topk_accuracy,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 7, size=200)
    scores = rng.normal(size=(200, 7)) + 1.5 * np.eye(7)[targets]
    return scores, targets


def test_classification_matches_sklearn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = scored
    result = classification_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    labels = np.arange(7)
    assert result["top1"] == pytest.approx(100 * top_k_accuracy_score(targets, scores, k=1, labels=labels))
    assert result["top5"] == pytest.approx(100 * top_k_accuracy_score(targets, scores, k=5, labels=labels))
    assert result["mean_class_acc"] == pytest.approx(100 * balanced_accuracy_score(targets, scores.argmax(1)))


def test_confusion_and_per_class(scored: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = scored
    predictions = scores.argmax(1)
    matrix = confusion_matrix(predictions, targets, 8)
    assert np.array_equal(matrix[:7, :7], sk_confusion_matrix(targets, predictions, labels=np.arange(7)))
    per_class = per_class_accuracy(predictions, targets, 8)
    assert np.isnan(per_class[7])
    assert per_class[:7] == pytest.approx(100 * np.diag(matrix)[:7] / matrix.sum(1)[:7])


def test_topk_is_clipped_to_the_number_of_classes_and_validates() -> None:
    assert topk_accuracy(np.array([[0.1, 0.9, 0.0]]), np.array([2]), k=5) == 100.0
    with pytest.raises(ValueError, match="scores must be"):
        topk_accuracy(np.zeros(3), np.zeros(3))


def test_regression_constant_shift() -> None:
    targets = np.linspace(0, 10, 11)
    result = regression_metrics(targets + 2.5, targets)
    assert result == {"mae": pytest.approx(2.5), "rmse": pytest.approx(2.5)}
    result = regression_metrics(np.array([0.0, 0.0]), np.array([3.0, -1.0]))
    assert result["mae"] == pytest.approx(2.0) and result["rmse"] == pytest.approx(np.sqrt(5.0))


def test_retrieval_by_hand() -> None:
    similarity = np.array([
        [0.9, 0.1, 0.0],  # rank 1
        [0.5, 0.4, 0.6],  # rank 3
        [0.2, 0.7, 0.7],  # tie with the positive: rank 1 (optimistic)
    ])
    assert retrieval_ranks(similarity).tolist() == [1, 3, 1]
    result = retrieval_metrics(similarity, ks=(1, 2))
    assert result["R@1"] == pytest.approx(200 / 3)
    assert result["R@2"] == pytest.approx(200 / 3)
    assert result["MdR"] == 1.0 and result["MnR"] == pytest.approx(5 / 3)


def test_retrieval_with_explicit_positives_and_perfect_scores() -> None:
    similarity = torch.eye(5)[[3, 0, 4]]
    assert retrieval_ranks(similarity, torch.tensor([3, 0, 4])).tolist() == [1, 1, 1]
    assert retrieval_metrics(torch.eye(20))["R@1"] == 100.0
    assert retrieval_metrics(-torch.eye(20))["MdR"] == 20.0
