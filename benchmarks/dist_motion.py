"""Does DiST see time? The ``motion`` world on the shipped ``tiny-world`` backbone, four runs side by side.

- ``dist``: the packaged default recipe (``chronoclip/configs/dist/motion.yaml``);
- ``dist spatial-only``: the same with ``model.ablation=spatial-only`` (spec A.8-6: the output reduces to
  the frame-averaged CLS of the frozen tower, so it cannot see frame order), 10 epochs;
- ``frame-probe``: frozen tower, frame average, linear head (the demo's settings);
- ``finetune``: the same with the tower trained, 5 epochs (a frame average too: order-blind by construction).

Order-only classes come in pairs, each the other reversed in time (``world.json``'s answer); a model that
ignores frame order is at 50 % within a pair. Printed: top1 on the test split overall, on the order-only
classes, right order within the pair, on the appearance classes, and wall-clock seconds of each run.

Run: ``python benchmarks/dist_motion.py [--n 100] [--seed 0] [--out DIR] [--runs ...] [--json out.json]``
(the default 1000-video world takes about 14 minutes on 2 CPU cores, DiST 10 of them; ``--n 24`` is a
4-minute run on which DiST sees order less well: 72 % on the order-only classes against 95 %)
(with ``--out``, finished runs are read back, so the four runs can be split over invocations; the world
of an existing ``DIR/world`` is reused).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from chronoclip.data.worlds import make_world
from chronoclip.demo import PROBE_OVERRIDES, order_appearance_accuracy
from chronoclip.engine.logging import read_history
from chronoclip.engine.runs import load_run, train

QUIET = ["train.log_every=1000"]
# The order-blind references train for fewer epochs than DiST to fit a 2-core CPU: spatial-only trains
# 18 k parameters on frozen features, finetune trains the whole tower; neither can see order at any length.
RUNS: dict[str, tuple[str, list[str]]] = {
    "dist": ("dist", []),
    "dist spatial-only": ("dist", ["model.ablation=spatial-only", "train.epochs=10"]),
    "frame-probe": ("frame-probe", PROBE_OVERRIDES),
    "finetune": ("finetune", [*PROBE_OVERRIDES, "train.epochs=5"]),
}
COLUMNS = ("top1", "order_top1", "order_within_pair_top1", "appearance_top1")


def run_all(world: Path, out: Path, seed: int, labels: list[str]) -> dict[str, dict[str, Any]]:
    """Train the runs ``labels`` of :data:`RUNS` on ``world``; their test figures and training seconds.

    A run folder under ``out`` that already holds final metrics is read back instead of retrained (its
    seconds are the training time its ``metrics.jsonl`` logged), so the runs may be split over invocations.
    """
    results = {}
    for label in labels:
        method, overrides = RUNS[label]
        folder = out / label.replace(" ", "-")
        if (folder / "metrics.json").is_file():
            run = load_run(folder)
            seconds = max(row["time"] for row in read_history(folder / "metrics.jsonl") if "time" in row)
        else:
            started = time.perf_counter()
            run = train(method, world / "manifest.csv", folder, backbone="tiny-world",
                        overrides=[*overrides, *QUIET, f"train.seed={seed}"])
            seconds = time.perf_counter() - started
        figures = {k: v for k, v in run.metrics.items() if isinstance(v, float)}
        figures.update(order_appearance_accuracy(run.metrics, world))
        figures["seconds"] = seconds
        figures["trainable"] = sum(p.numel() for p in run.method.parameters() if p.requires_grad)
        results[label] = figures
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="videos per class of the motion world")
    parser.add_argument("--seed", type=int, default=0, help="world and training seed")
    parser.add_argument("--out", type=Path, help="keep the world and run folders here (default: a temp folder)")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), help="which runs (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        root = args.out or Path(temp)
        manifest = root / "world" / "manifest.csv"
        if not manifest.is_file():
            make_world("motion", root / "world", seed=args.seed, n=args.n)
        results = run_all(manifest.parent, root / "runs", args.seed, args.runs)
    print(f"motion world: {10 * args.n} videos (seed {args.seed}), backbone tiny-world, test split; "
          f"order-only pairs are each other reversed in time (chance within a pair: 50 %)")
    print("| run | trainable params | top1 | order-only top1 | right order within the pair | appearance top1 "
          "| seconds |\n|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        cells = " | ".join(f"{r.get(k, float('nan')):.1f}" for k in COLUMNS)
        print(f"| {label} | {r['trainable']:,} | {cells} | {r['seconds']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"config": {"n": args.n, "seed": args.seed}, "results": results},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
