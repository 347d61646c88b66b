"""Run reports: plots and report.md from whatever inputs are available."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PIL import Image

from chronoclip.eval import write_report

CLASSES = ["grow", "shrink", "spin left", "spin right", "red square"]


def history() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for step in range(1, 31):
        rows.append({"step": step, "epoch": (step - 1) // 10, "loss": 2.0 / step, "ce": 1.5 / step,
                     "lr": 1e-3, "time": 0.1 * step})
        if step % 10 == 0:
            rows.append({"step": step, "epoch": step // 10, "val/top1": 40.0 + step,
                         "val/mean_class_acc": 35.0 + step})
    return rows


def final() -> dict[str, Any]:
    return {"top1": 83.25, "top5": 100.0, "mean_class_acc": 80.5,
            "protocol": {"task": "classify", "split": "test", "clips": 2, "crops": 3, "templates": "a|b"},
            "retrieval": {"t2v_R@1": 41.0, "protocol": {"task": "retrieval", "texts": 10}},
            "sweep": [{"C": 1.0, "val_top1": 50.0}], "folds": [1, 2, 3]}


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"


def predictions_and_targets(classes: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    targets = np.arange(n) % classes
    predictions = np.where(rng.random(n) < 0.7, targets, rng.integers(0, classes, n))
    return predictions, targets


def test_report_with_predictions(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    predictions, targets = predictions_and_targets(len(CLASSES))
    report = write_report(tmp_path, history(), final(), CLASSES, predictions, targets)
    assert report == tmp_path / "report.md"
    for name in ("loss.png", "confusion.png", "per_class.png"):
        assert_png(tmp_path / "plots" / name)
    text = report.read_text()
    for expected in ("| top1 | 83.25 |", "| mean_class_acc | 80.5 |", "| retrieval.t2v_R@1 | 41 |",
                     "## Protocol\n", "## Protocol (retrieval)", "| clips | 2 |", "a\\|b",
                     "| sweep | (list of 1) |", "| folds | 1, 2, 3 |", "plots/loss.png",
                     "plots/confusion.png", "plots/per_class.png", "Lowest per-class accuracy"):
        assert expected in text, expected
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]  # no temp files left
    assert matplotlib.get_backend() == backend  # global matplotlib state untouched


def test_report_without_predictions_or_history(tmp_path: Path) -> None:
    predictions, targets = predictions_and_targets(len(CLASSES))
    write_report(tmp_path, history(), final(), CLASSES, predictions, targets)
    report = write_report(tmp_path, [], {"top1": 50.0})  # a later report without them
    text = report.read_text()
    assert "| top1 | 50 |" in text and "No training history" in text
    assert "No predictions were given: no per-class results" in text
    assert not (tmp_path / "plots" / "confusion.png").exists()  # stale plots removed
    assert not (tmp_path / "plots" / "loss.png").exists()


def test_report_training_only_and_many_classes(tmp_path: Path) -> None:
    only_loss = [{"step": s, "loss": 1.0 / s} for s in range(1, 5)]
    write_report(tmp_path / "a", only_loss, {})
    assert_png(tmp_path / "a" / "plots" / "loss.png")
    assert "No final metrics" in (tmp_path / "a" / "report.md").read_text()
    predictions, targets = predictions_and_targets(60, n=600)
    write_report(tmp_path / "b", [], {"top1": 1.0}, None, predictions, targets)
    assert_png(tmp_path / "b" / "plots" / "confusion.png")
    assert_png(tmp_path / "b" / "plots" / "per_class.png")


def test_report_input_errors(tmp_path: Path) -> None:
    predictions, targets = predictions_and_targets(3)
    with pytest.raises(ValueError, match="both"):
        write_report(tmp_path, [], {}, predictions=predictions)
    with pytest.raises(ValueError, match="both be"):
        write_report(tmp_path, [], {}, predictions=predictions[:-1], targets=targets)
    with pytest.raises(ValueError, match="class names"):
        write_report(tmp_path, [], {}, ["a", "b"], predictions, targets)


def test_report_leaves_out_unlabelled_samples(tmp_path: Path) -> None:
    predictions, targets = np.array([0, 1, 2, 2]), np.array([0, 1, -1, -1])  # -1: unlabelled
    text = write_report(tmp_path / "a", [], {}, ["a", "b", "c"], predictions, targets).read_text()
    assert "Mean over classes: 100.00 % on 2 samples" in text
    write_report(tmp_path / "b", [], {}, None, predictions, np.array([0, 1, 2, 2]))
    text = write_report(tmp_path / "b", [], {}, None, predictions, np.full(4, -1)).read_text()
    assert "No labelled samples" in text and not (tmp_path / "b" / "plots" / "confusion.png").exists()
