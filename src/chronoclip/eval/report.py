"""Run reports: ``plots/*.png`` and a ``report.md`` that summarises the final metrics and protocol.

Plots are drawn with matplotlib's object API (:class:`~matplotlib.figure.Figure` on an Agg canvas),
so writing a report never touches pyplot's global state or the backend other code in the process
uses. Every file is written atomically (temporary file, then rename), so a report is either the old
one or the new one, never half-written.

What is drawn depends on what is given:

- ``plots/loss.png`` — training loss (and its named parts) per step, plus validation metrics per
  epoch, from the ``metrics.jsonl`` rows (skipped when no row has a ``loss``);
- ``plots/confusion.png`` — row-normalised confusion matrix (needs predictions and targets);
- ``plots/per_class.png`` — per-class accuracy (needs predictions and targets);
- ``plots/time.png`` — predicted against true time, one line per series (needs ``times``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from chronoclip.eval.metrics import confusion_matrix, mean_class_accuracy, per_class_accuracy
from chronoclip.io.writers import atomic_path

log = logging.getLogger(__name__)

ROW_KEYS = {"step", "epoch", "lr", "time"}
"""Columns of a ``metrics.jsonl`` row that are not losses."""
PLOTS = ("loss.png", "confusion.png", "per_class.png", "time.png")
"""The files this module writes under ``plots/``."""
LABELLED_CLASSES = 50
"""Up to this many classes, confusion-matrix axes carry class names."""
TIME_PLOT_SERIES = 12
"""The time plot draws at most this many series (the first in sorted order), so lines stay readable."""


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Loss per step (left) and ``val/*`` metrics per epoch (right); ``False`` if there is no loss."""
    train_rows = [row for row in history if isinstance(row.get("loss"), (int, float))]
    val_rows = [row for row in history if any(key.startswith("val/") for key in row)]
    if not train_rows:
        return False
    loss_keys = sorted({key for row in train_rows for key, value in row.items()
                        if key not in ROW_KEYS and not key.startswith("val/")
                        and isinstance(value, (int, float))} - {"loss"})
    figure = Figure(figsize=(11 if val_rows else 6, 4))
    axes = figure.subplots(1, 2 if val_rows else 1, squeeze=False)[0]
    steps = [row.get("step", index) for index, row in enumerate(train_rows)]
    axes[0].plot(steps, [row["loss"] for row in train_rows], label="loss", linewidth=1.8)
    for key in loss_keys:
        points = [(row.get("step", i), row[key]) for i, row in enumerate(train_rows) if key in row]
        axes[0].plot(*zip(*points, strict=True), label=key, linewidth=0.9, alpha=0.7)
    axes[0].set(xlabel="step", ylabel="training loss", title="training loss")
    axes[0].grid(alpha=0.3)
    if loss_keys:
        axes[0].legend(fontsize=8)
    if val_rows:
        x_key = "epoch" if all("epoch" in row for row in val_rows) else "step"
        for key in sorted({k for row in val_rows for k in row if k.startswith("val/")}):
            points = [(row[x_key], row[key]) for row in val_rows if isinstance(row.get(key), (int, float))]
            if points:
                axes[1].plot(*zip(*points, strict=True), marker="o", label=key.removeprefix("val/"))
        axes[1].set(xlabel=x_key, title="validation")
        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=8)
    _save(figure, path)
    return True


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a heat map."""
    counts = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, counts, out=np.zeros(matrix.shape), where=counts > 0)
    size = len(class_names)
    side = min(max(4.0 + 0.22 * size, 5.0), 16.0)
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.subplots()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    axes.set(xlabel="predicted class", ylabel="true class", title="confusion matrix (row-normalised)")
    if size <= LABELLED_CLASSES:
        font = max(5.0, min(10.0, 260.0 / size))
        axes.set_xticks(range(size), labels=class_names, rotation=90, fontsize=font)
        axes.set_yticks(range(size), labels=class_names, fontsize=font)
    if size <= 15:
        for (row, column), value in np.ndenumerate(normalised):
            if value > 0:
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
    _save(figure, path)


def plot_per_class(accuracy: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Horizontal bars of per-class accuracy (percent), with the mean over classes as a line."""
    size = len(class_names)
    figure = Figure(figsize=(7, min(max(1.5 + 0.22 * size, 3.0), 24.0)))
    axes = figure.subplots()
    present = ~np.isnan(accuracy)
    axes.barh(np.arange(size)[present], accuracy[present], color="tab:blue")
    if present.any():
        axes.axvline(float(accuracy[present].mean()), color="tab:red", linestyle="--", label="mean")
        axes.legend(fontsize=8, loc="lower right")
    axes.set(xlim=(0, 100), ylim=(size - 0.5, -0.5), xlabel="accuracy (%)", title="per-class accuracy")
    if size <= 2 * LABELLED_CLASSES:
        axes.set_yticks(range(size), labels=class_names, fontsize=max(5.0, min(10.0, 300.0 / size)))
    axes.grid(axis="x", alpha=0.3)
    _save(figure, path)


def plot_time_by_series(series: Sequence[str], true: np.ndarray, predicted: np.ndarray, unit: str,
                        path: Path) -> int:
    """Predicted against true time, one line per series (at most :data:`TIME_PLOT_SERIES`), with the
    diagonal; returns the number of series drawn."""
    true, predicted = np.asarray(true, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if not len(series) == len(true) == len(predicted):
        raise ValueError(f"series, true and predicted must have one entry per sample; got {len(series)}, "
                         f"{len(true)} and {len(predicted)}")
    names = sorted(set(series))[:TIME_PLOT_SERIES]
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    labels = np.asarray(series)
    for name in names:
        chosen = labels == name
        order = np.argsort(true[chosen], kind="stable")
        axes.plot(true[chosen][order], predicted[chosen][order], marker=".", linewidth=1, label=name)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="black", linestyle="--", linewidth=1, label="ideal")
    axes.set(xlabel=f"true time ({unit})", ylabel=f"predicted time ({unit})", title="predicted vs true time")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    _save(figure, path)
    return len(names)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
    elif isinstance(value, list):
        scalar = all(isinstance(v, (int, float, str, bool)) for v in value)
        text = ", ".join(_cell(v) for v in value) if scalar and len(value) <= 8 else f"(list of {len(value)})"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(result: Mapping[str, Any], prefix: str, values: list[tuple[str, Any]],
             protocols: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Split a (possibly nested) result into scalar rows and the ``protocol`` dicts it holds."""
    for key, value in result.items():
        name = f"{prefix}{key}"
        if key == "protocol" and isinstance(value, Mapping):
            protocols.append((prefix.rstrip("."), value))
        elif key == "confusion":  # drawn as plots/confusion.png, too large for a table
            continue
        elif isinstance(value, Mapping):
            _flatten(value, f"{name}.", values, protocols)
        else:
            values.append((name, value))


def _table(header: tuple[str, str], rows: Sequence[tuple[str, Any]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    return lines + [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows]


def write_report(run_dir: str | Path, history: Sequence[Mapping[str, Any]], final: Mapping[str, Any],
                 class_names: Sequence[str] | None = None,
                 predictions: torch.Tensor | np.ndarray | None = None,
                 targets: torch.Tensor | np.ndarray | None = None,
                 times: Mapping[str, Any] | None = None) -> Path:
    """Render ``plots/*.png`` and ``report.md`` under ``run_dir``; return the path of ``report.md``.

    Args:
        run_dir: the run (or evaluation output) folder.
        history: the ``metrics.jsonl`` rows (``step``, ``epoch``, ``loss`` and its parts; validation
            rows with ``val/*`` keys); may be empty.
        final: the final result (``metrics.json``), possibly nested per protocol; every
            ``protocol`` entry is listed in its own table.
        class_names: names for the class axes (default ``class 0``, ``class 1``, ...).
        predictions / targets: ``[N]`` predicted and true class indices, for the confusion matrix
            and per-class accuracy; both or neither. Targets ``< 0`` (unlabelled) are left out.
        times: ``series`` (names), ``true`` and ``predicted`` ``[N]`` times and their ``unit``, for the
            predicted-vs-true time plot.

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> history = [{"step": s, "epoch": 0, "loss": 1.0 / s} for s in range(1, 20)]
        >>> write_report(folder, history, {"top1": 91.0, "protocol": {"split": "test"}}).name
        'report.md'
    """
    if (predictions is None) != (targets is None):
        raise ValueError("give both predictions and targets, or neither")
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    values: list[tuple[str, Any]] = []
    protocols: list[tuple[str, Mapping[str, Any]]] = []
    _flatten(final, "", values, protocols)
    lines = [f"# Report: {run_dir.resolve().name}", "", "## Summary", ""]
    lines += _table(("metric", "value"), values) if values else ["No final metrics were given."]
    for name, protocol in protocols:
        lines += ["", f"## Protocol ({name})" if name else "## Protocol", ""]
        lines += _table(("setting", "value"), list(protocol.items()))

    lines += ["", "## Training curves", ""]
    if plot_training_curves(history, plots / "loss.png"):
        lines.append("![training loss and validation metrics](plots/loss.png)")
    else:
        lines.append("No training history with a `loss` was given.")

    if predictions is not None and targets is not None:
        lines += _class_sections(plots, class_names, predictions, targets)
    else:
        lines += ["", "## Per-class results", "", "No predictions were given: no per-class results."]
    if times is not None and len(times["true"]):
        drawn = plot_time_by_series(times["series"], times["true"], times["predicted"], times["unit"],
                                    plots / "time.png")
        lines += ["", "## Predicted vs true time", "",
                  f"{drawn} of {len(set(times['series']))} series, in {times['unit']}.", "",
                  "![predicted vs true time per series](plots/time.png)"]

    text = "\n".join(lines) + "\n"
    report = run_dir / "report.md"
    with atomic_path(report) as temp:
        temp.write_text(text, encoding="utf-8")
    for name in PLOTS:  # a plot exists if and only if the report shows it: drop stale ones
        if f"(plots/{name})" not in text:
            (plots / name).unlink(missing_ok=True)
    log.info("wrote %s", report)
    return report


def _class_sections(plots: Path, class_names: Sequence[str] | None, predictions: torch.Tensor | np.ndarray,
                    targets: torch.Tensor | np.ndarray) -> list[str]:
    """Draw the confusion matrix and per-class accuracy; return their report.md sections."""
    predicted = torch.as_tensor(predictions).detach().cpu().long().flatten().numpy()
    true = torch.as_tensor(targets).detach().cpu().long().flatten().numpy()
    if predicted.shape != true.shape:
        raise ValueError(f"predictions and targets must both be [N]; got {predicted.shape} and {true.shape}")
    labelled = true >= 0
    predicted, true = predicted[labelled], true[labelled]
    if not len(true):
        return ["", "## Per-class results", "", "No labelled samples: no per-class results."]
    size = int(max(predicted.max(), true.max())) + 1
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(size)]
    if len(names) < size:
        raise ValueError(f"{len(names)} class names for class indices up to {size - 1}")
    size = len(names)
    plot_confusion(confusion_matrix(predicted, true, size), names, plots / "confusion.png")
    accuracy = per_class_accuracy(predicted, true, size)
    plot_per_class(accuracy, names, plots / "per_class.png")
    worst = [(names[i], accuracy[i]) for i in np.argsort(accuracy)[:5] if not np.isnan(accuracy[i])]
    return ["", "## Confusion matrix", "", "![confusion matrix](plots/confusion.png)", "",
            "## Per-class accuracy", "",
            f"Mean over classes: {mean_class_accuracy(predicted, true):.2f} % on {len(true)} samples.", "",
            "![per-class accuracy](plots/per_class.png)", "", "Lowest per-class accuracy:", "",
            *_table(("class", "accuracy (%)"), worst)]
