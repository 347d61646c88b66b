"""The demo's motion-world figures: appearance vs order-only classes, pair found vs order within the pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chronoclip.demo import order_appearance_accuracy


def test_order_within_pair_counts_only_samples_whose_pair_was_found(tmp_path: Path) -> None:
    answer = {"order_classes": ["left", "right"], "appearance_classes": ["star", "ring"],
              "order_pairs": [["left", "right"]]}
    (tmp_path / "world.json").write_text(json.dumps({"answer": answer}))
    classes = ["left", "right", "ring", "star"]
    counts = [[3, 1, 0, 0],   # left: 3 right, 1 swapped with its pair
              [2, 2, 0, 0],   # right: 2 swapped, 2 right
              [0, 2, 2, 0],   # ring: 2 mistaken for an order class (not counted in the pair figures)
              [0, 0, 0, 4]]
    metrics = {"per_class_top1": {"left": 75.0, "right": 50.0, "ring": 50.0, "star": 100.0},
               "confusion": {"classes": classes, "counts": counts}}
    result = order_appearance_accuracy(metrics, tmp_path)
    assert result["order_top1"] == pytest.approx(62.5) and result["appearance_top1"] == pytest.approx(75.0)
    assert result["order_pair_top1"] == pytest.approx(100.0)  # all 8 order samples stayed in their pair
    assert result["order_within_pair_top1"] == pytest.approx(100 * 5 / 8)
