"""Linear-probe speed at real sizes: the scikit-learn C sweep against the warm-started torch solver, one run.

Two synthetic feature sets shaped like the probes users run (features of frozen encoders: class centres in
a low-dimensional subspace plus anisotropic noise, so top1 is neither chance nor 100 % and the chosen C is
interior):

- ``ESC-50-like``: 16 000 × 512, 50 classes, 5 folds (2 000 clips × 8 crops), cross-validated over the
  folds with the crops of a clip averaged (:func:`~chronoclip.eval.linear_probe.evaluate_linear_probe_folds`);
- ``UCF101-like``: 9 500 × 768, 101 classes, one train / test split (70 / 30).

Both solvers run the same protocol (:class:`~chronoclip.eval.linear_probe.ProbeSettings`: the C grid 1e-6 …
1e6 with 2 refinements, the hold-out, 1 000 iterations, tol 1e-4). Printed: seconds and top1 of each, the
speed-up and the top1 difference.

Run: ``python benchmarks/linear_probe.py [--scale 1.0] [--folds 5] [--device auto|cpu|cuda] [--json out.json]``
(``--scale 0.25`` shrinks every row count; ``--folds K`` tests only the first K folds of the ESC-50-like set).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronoclip.eval.linear_probe import ProbeSettings, evaluate_linear_probe, evaluate_linear_probe_folds


@dataclass(frozen=True)
class FeatureSet:
    """A synthetic probe problem."""

    name: str
    items: int
    crops: int
    width: int
    classes: int
    folds: int  # 0: one 70 / 30 split


SETS = (FeatureSet("ESC-50-like", 2000, 8, 512, 50, 5), FeatureSet("UCF101-like", 9500, 1, 768, 101, 0))


def make_features(spec: FeatureSet, scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows ``[items·crops, width]`` of ``spec``: per-class centres in a 32-d subspace, a per-item offset
    shared by its crops, and per-row noise with a decaying spectrum."""
    rng = np.random.default_rng(seed)
    items = max(spec.classes * 10, int(spec.items * scale))
    labels = np.arange(items) % spec.classes
    basis = np.linalg.qr(rng.normal(size=(spec.width, 32)))[0]
    centres = rng.normal(size=(spec.classes, 32)) @ basis.T * 0.9
    item_offset = rng.normal(size=(items, spec.width)) * 0.6
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(spec.width) / 16.0)
    rows = np.repeat(np.arange(items), spec.crops)
    noise = rng.normal(size=(len(rows), spec.width)) * spectrum
    features = (centres[labels][rows] + item_offset[rows] + noise).astype(np.float32)
    return {"features": features, "labels": labels[rows], "items": rows,
            "folds": ((np.arange(items) // spec.classes) % 5 if spec.folds else rng.random(items) < 0.3)[rows]
            .astype(np.int64)}  # ESC-50-like: every fold holds every class


def run_probe(spec: FeatureSet, data: dict[str, np.ndarray], settings: ProbeSettings, folds: int
              ) -> dict[str, Any]:
    """Seconds and top1 of one solver on one feature set."""
    started = time.perf_counter()
    if spec.folds and folds < spec.folds:  # test only the first `folds` folds, each trained on all the others
        results = [evaluate_linear_probe(
            data["features"][data["folds"] != f], data["labels"][data["folds"] != f],
            data["features"][data["folds"] == f], data["labels"][data["folds"] == f], settings=settings,
            train_item_ids=data["items"][data["folds"] != f], test_item_ids=data["items"][data["folds"] == f])
            for f in range(folds)]
        top1, chosen = float(np.mean([r["top1"] for r in results])), [r["best_C"] for r in results]
    elif spec.folds:
        result = evaluate_linear_probe_folds(data["features"], data["labels"], data["folds"], item_ids=data["items"],
                                             settings=settings)
        top1, chosen = result["top1"], [row["best_C"] for row in result["per_fold"]]
    else:
        test = data["folds"] == 1
        result = evaluate_linear_probe(data["features"][~test], data["labels"][~test], data["features"][test],
                                       data["labels"][test], settings=settings)
        top1, chosen = result["top1"], [result["best_C"]]
    return {"seconds": time.perf_counter() - started, "top1": top1, "best_C": chosen}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real row counts")
    parser.add_argument("--folds", type=int, default=5, help="ESC-50-like folds tested (1-5)")
    parser.add_argument("--device", default="auto", help="torch solver device: auto, cpu or cuda")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    rows = []
    for spec in SETS:
        data = make_features(spec, args.scale)
        shape = f"{len(data['labels'])} × {spec.width}, {spec.classes} classes"
        results = {solver: run_probe(spec, data, ProbeSettings(solver=solver, device=args.device), args.folds)
                   for solver in ("sklearn", "torch")}
        rows.append({"set": spec.name, "shape": shape, **{f"{m}_{k}": v for k, r in results.items()
                                                          for m, v in r.items()}})
        print(f"{spec.name} ({shape}) done: {results}", flush=True)
    folds = f"{args.folds} of 5 folds" if args.folds < 5 else "5 folds"
    print(f"\nlinear probe, scale {args.scale} ({folds} for ESC-50-like), torch device {args.device}")
    print("| features | scikit-learn s | torch s | speed-up | scikit-learn top1 | torch top1 | Δ top1 |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['set']} ({row['shape']}) | {row['seconds_sklearn']:.1f} | {row['seconds_torch']:.1f} | "
              f"{row['seconds_sklearn'] / row['seconds_torch']:.1f}× | {row['top1_sklearn']:.2f} | "
              f"{row['top1_torch']:.2f} | {row['top1_torch'] - row['top1_sklearn']:+.2f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
