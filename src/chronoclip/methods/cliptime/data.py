"""The samples ``cliptime`` trains on and what it fits on the training split (spec C.3, C.5).

A sample is a :class:`~chronoclip.data.datasets.ManifestDataset` sample (image pixels or cached image
features, the note as ``text``) plus ``stage_index`` (``-1`` when the row has no known stage),
``time`` (elapsed time in the run's unit, NaN when the row has no timestamp) and ``tau``, the time
normalised by the training split's range.

From the training split the method fits a :class:`TimeStats`: the time unit, the range
[t_min, t_min + t_range] that τ ∈ [0, 1] covers, and the temporal order of the stages with the τ
boundaries between consecutive stages (for the stage–time consistency metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chronoclip.data.datasets import ManifestDataset, SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ManifestError, Problem
from chronoclip.methods.cliptime.config import TIME_UNITS


def elapsed_seconds(rows: Manifest, origin: str) -> list[float | None]:
    """Each row's time in seconds: its ``timestamp`` minus the earliest timestamp of its ``series``
    (origin ``series``; rows without a series form one series) or the timestamp itself (``absolute``)."""
    stamps = rows.column("timestamp")
    if origin == "absolute":
        return list(stamps)
    series = rows.column("series")
    first: dict[Any, float] = {}
    for name, stamp in zip(series, stamps, strict=True):
        if stamp is not None:
            first[name] = min(first.get(name, stamp), stamp)
    return [None if stamp is None else stamp - first[name] for name, stamp in zip(series, stamps, strict=True)]


def choose_unit(range_seconds: float) -> str:
    """The largest unit of :data:`TIME_UNITS` in which ``range_seconds`` is at least 10 (else seconds):
    48 hours are reported in hours, 30 days in days."""
    fitting = [name for name, seconds in TIME_UNITS.items() if range_seconds / seconds >= 10]
    return fitting[-1] if fitting else "seconds"


def stage_boundaries(tau: np.ndarray, stage: np.ndarray, num_stages: int) -> tuple[np.ndarray, np.ndarray]:
    """The stages' temporal order and the τ boundaries between consecutive stages.

    Args:
        tau: ``[N]`` normalised training times; stage: ``[N]`` their stage indices (``-1`` = unknown).
        num_stages: K.

    Returns:
        ``order [K]`` (stage indices by mean τ; absent stages last) and non-decreasing ``bounds [K-1]``:
        each the threshold that best separates the stages before it from those after it (midpoint of
        the two training times around the best cut).
    """
    known = stage >= 0
    tau, stage = tau[known], stage[known]
    means = [tau[stage == k].mean() if (stage == k).any() else np.inf for k in range(num_stages)]
    order = np.argsort(means, kind="stable")
    rank = np.empty(num_stages, dtype=np.int64)
    rank[order] = np.arange(num_stages)
    by_time = np.argsort(tau, kind="stable")
    sorted_tau, sorted_rank = tau[by_time], rank[stage[by_time]]
    bounds = []
    for k in range(num_stages - 1):
        later = sorted_rank > k
        # correct decisions when the cut is before position j: earlier ones below, later ones above
        correct = np.concatenate([[0], np.cumsum(~later)]) + np.concatenate([np.cumsum(later[::-1])[::-1], [0]])
        j = int(np.argmax(correct))
        low = sorted_tau[j - 1] if j > 0 else 0.0
        high = sorted_tau[j] if j < len(sorted_tau) else 1.0
        bounds.append((low + high) / 2)
    return order, np.maximum.accumulate(np.asarray(bounds, dtype=np.float64))


@dataclass(frozen=True)
class TimeStats:
    """What the training split fixes: time unit and range, and the stages' order and boundaries in τ."""

    unit: str
    t_min: float
    t_range: float
    order: np.ndarray
    bounds: np.ndarray


def fit_time_stats(rows: Manifest, class_names: list[str], origin: str, unit: str) -> TimeStats:
    """Fit :class:`TimeStats` on the training rows.

    Raises:
        ManifestError: a training row without a timestamp, or all training times equal.
    """
    seconds = elapsed_seconds(rows, origin)
    missing = [Problem("no timestamp: cliptime regresses time", row, "timestamp")
               for row, value in zip(rows.rows, seconds, strict=True) if value is None]
    if missing:
        raise ManifestError(rows.name, missing, hint="Give every training row a timestamp (seconds or ISO 8601).")
    values = np.asarray(seconds, dtype=np.float64)
    span = float(values.max() - values.min())
    if span <= 0:
        raise ManifestError(rows.name, [Problem("every training row has the same time: nothing to regress")],
                            hint="Train on frames taken at different times.")
    chosen = choose_unit(span) if unit == "auto" else unit
    times = values / TIME_UNITS[chosen]
    t_min, t_range = float(times.min()), span / TIME_UNITS[chosen]
    index = {name: i for i, name in enumerate(class_names)}
    stages = np.asarray([index.get(s, -1) if s is not None else -1 for s in rows.column("stage")])
    order, bounds = stage_boundaries((times - t_min) / t_range, stages, len(class_names))
    return TimeStats(chosen, t_min, t_range, order, bounds)


class StageTimeDataset(ManifestDataset):
    """A :class:`ManifestDataset` whose samples also carry ``stage_index``, ``time`` and ``tau``.

    Args:
        manifest, spec, class_names, train, seed: as :class:`ManifestDataset` (``class_names`` are the stages).
        times: each row's elapsed time in the run's unit (``None`` = unknown).
        t_min, t_range: the training range that τ = (time − t_min) / t_range maps to [0, 1].
    """

    def __init__(self, manifest: Manifest, spec: SampleSpec, class_names: list[str], train: bool, seed: int,
                 times: list[float | None], t_min: float, t_range: float) -> None:
        super().__init__(manifest, spec, class_names, train=train, seed=seed)
        self.times, self.t_min, self.t_range = times, t_min, t_range

    def row_fields(self, index: int) -> dict[str, Any]:
        sample = super().row_fields(index)
        time = self.times[index]
        stage = self.manifest[index].get("stage")
        sample["stage_index"] = self.class_index.get(stage, -1) if stage is not None else -1
        sample["time"] = float("nan") if time is None else float(time)
        sample["tau"] = float("nan") if time is None else (time - self.t_min) / self.t_range
        return sample
