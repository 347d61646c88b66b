"""Training cost at real size: frozen ``frame-probe`` and ``dist`` (DiST) vs full ``finetune``.

A random-init ViT-B/16 (``clip-b16``: weight values do not change cost) sees clips of 8 frames at
224² (DiST: the paper's K400 8+16f model, 8 sparse frames through the tower and 16 dense frames through
the temporal encoder). Each configuration runs in its own subprocess so its peak memory is its own
(CUDA: peak allocated; CPU: peak resident set size of the process, which includes the ~0.5 GB
interpreter + torch baseline). Prints median training-step time, peak memory and forward GMACs per view
(``torch.utils.flop_counter``, one multiply-add = 2 FLOPs, the fvcore convention of spec A.3) side by
side, with ratios to ``finetune``.

Then the frozen-feature cache: ``frame-probe`` training epochs on a small ``motion`` world with the
cache off (decode + ViT every epoch), cold (first epoch fills the cache) and warm (a new run reuses it).

Run: ``python benchmarks/train_cost.py [--steps 3] [--batch 2] [--frames 8] [--device auto|cpu|cuda]
[--methods frame-probe dist] [--no-cache]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

METHODS = ("frame-probe", "finetune", "dist")


def measure(method: str, steps: int, batch: int, frames: int, device: str) -> dict[str, float]:
    """Median seconds per optimizer step and peak memory (MiB) of one method (run in this process)."""
    import torch

    from chronoclip.backbones import load_backbone
    from chronoclip.config import OptimConfig
    from chronoclip.engine.optim import build_optimizer
    from chronoclip.methods import get_method

    torch.manual_seed(0)
    method_cls = get_method(method)
    model = method_cls(method_cls.Config(frames=frames), load_backbone("clip-b16"), [f"c{i}" for i in range(10)])
    model = model.to(device).train()
    optimizer = build_optimizer(model.param_groups(), OptimConfig(lr=1e-4))
    clip_frames = model.sample_spec().frames  # DiST: the dense frames it samples (2 x frames)
    batch_data = {"pixels": torch.randn(batch, clip_frames, 3, 224, 224, device=device),
                  "label": torch.randint(0, 10, (batch,), device=device)}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):  # the first step is a warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = model.loss(model(batch_data), batch_data)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - started)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"step_s": statistics.median(times), "peak_mib": peak, "trainable_params": trainable,
            "gmacs_per_view": forward_gmacs(model, batch_data["pixels"][:1])}


def forward_gmacs(model: Any, view: Any) -> float:
    """Forward multiply-adds (GMACs) of one view ``[1, T, 3, H, W]`` counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:  # grad mode on: FlopCounterMode's module tracker rejects parameters used under no_grad
        model({"pixels": view})
    return counter.get_total_flops() / 2e9


def cache_epochs(frames: int, clips_per_class: int) -> dict[str, float]:
    """Seconds per training epoch of frame-probe (ViT-B/16) with the feature cache off, cold and warm."""
    import tempfile
    from pathlib import Path

    from chronoclip.data.worlds import make_world
    from chronoclip.engine.logging import read_history
    from chronoclip.engine.runs import train

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        manifest = make_world("motion", root / "world", n=clips_per_class, splits=[1.0, 0.0, 0.0])
        common = ["train.epochs=2", "train.batch_size=4", f"model.frames={frames}", "train.eval_every=0",
                  f"train.cache_dir={root / 'cache'}"]
        result = {}
        for name, extra in (("off", ["train.cache=false"]), ("cold", []), ("warm", [])):
            started = time.perf_counter()
            train("frame-probe", manifest, root / name, backbone="clip-b16", overrides=[*common, *extra])
            total = time.perf_counter() - started
            steps = [r["time"] for r in read_history(root / name / "metrics.jsonl") if "loss" in r]
            half = len(steps) // 2
            result[f"{name}_run_s"] = total
            result[f"{name}_epoch2_s"] = steps[-1] - steps[half - 1]
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--cache-clips", type=int, default=2, help="motion clips per class for the cache runs")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="what to measure besides finetune (the reference)")
    parser.add_argument("--no-cache", action="store_true", help="skip the feature-cache epochs")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.batch, args.frames, args.device)))
        return
    results = {}
    for method in dict.fromkeys(["finetune", *args.methods]):
        command = [sys.executable, __file__, "--child", method, "--steps", str(args.steps), "--batch",
                   str(args.batch), "--frames", str(args.frames), "--device", args.device]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
    full = results["finetune"]
    print(f"ViT-B/16 (random init), {args.frames} frames x 224^2 (dist: {args.frames} sparse + {2 * args.frames} "
          f"dense), batch {args.batch}, device {args.device}, median of {args.steps} steps after 1 warm-up")
    print("| method | trainable params | step (s) | peak memory (MiB) | GMACs / view |\n|---|---:|---:|---:|---:|")
    for method, r in results.items():
        print(f"| {method} | {r['trainable_params']:,} | {r['step_s']:.3f} | {r['peak_mib']:.0f} | "
              f"{r['gmacs_per_view']:.1f} |")
    for method in (m for m in ("frame-probe", "dist") if m in results):
        r = results[method]
        print(f"| ratio {method} / finetune | | {r['step_s'] / full['step_s']:.2f}x | "
              f"{r['peak_mib'] / full['peak_mib']:.2f}x | {r['gmacs_per_view'] / full['gmacs_per_view']:.2f}x |")
    print("(spec A.3 estimate for dist: ~164 GMACs / view incl. 0.9 GMACs of patch embedding on the dropped "
          "frames, which chronoclip does not run)")
    if args.no_cache:
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"config": vars(args), "results": results}, handle, indent=2)
        return
    if "frame-probe" not in results:
        raise SystemExit("the feature-cache epochs are frame-probe's: add it to --methods or pass --no-cache")
    cache = cache_epochs(args.frames, args.cache_clips)
    print(f"\nframe-probe on ViT-B/16, motion world ({10 * args.cache_clips} clips): 2-epoch run incl. cache fill")
    print("| feature cache | whole run (s) | 2nd epoch (s) |\n|---|---:|---:|")
    for name in ("off", "cold", "warm"):
        print(f"| {name} | {cache[name + '_run_s']:.1f} | {cache[name + '_epoch2_s']:.2f} |")
    print(f"| speed-up of an epoch on cached features vs off | | "
          f"{cache['off_epoch2_s'] / max(cache['warm_epoch2_s'], 1e-9):.0f}x |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": vars(args), "results": results, "cache": cache}, handle, indent=2)


if __name__ == "__main__":
    main()
