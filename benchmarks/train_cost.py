"""Training cost at real size: frozen ``frame-probe`` and ``dist`` (DiST) vs full ``finetune``.

A random-init ViT-B/16 (``clip-b16``: weight values do not change cost) sees clips of 8 frames at
224² (DiST: the paper's K400 8+16f model, 8 sparse frames through the tower and 16 dense frames through
the temporal encoder; ``dist-recompute-integration`` / ``-layers``: the same with activation checkpointing,
``model.checkpoint_branch=integration|layers``; ``dist-end-to-end``: the same model with the tower trained
too, ``model.tower=end-to-end``, the full fine-tune of spec A.3's FLOP ratio). Each configuration runs in
its own subprocess. Peak
memory is that of tensors, weights included (CUDA: peak allocated; CPU: the profiler's peak of live
tensor bytes, the same quantity; the process's resident set adds the interpreter and libraries to both
arms alike). Prints median training-step time, peak memory and forward GMACs per view
(``torch.utils.flop_counter``, one multiply-add = 2 FLOPs, the fvcore convention of spec A.3) side by
side, with ratios to ``finetune`` and, when measured, to ``dist-end-to-end``.

Then the frozen-feature cache: ``frame-probe`` training epochs on a small ``motion`` world with the
cache off (decode + ViT every epoch), cold (first epoch fills the cache) and warm (a new run reuses it).

Run: ``python benchmarks/train_cost.py [--steps 3] [--batch 2] [--frames 8] [--device auto|cpu|cuda]
[--methods frame-probe dist dist-recompute-integration dist-end-to-end] [--no-cache]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

#: What can be measured: a registered method, with config changes for a variant of it.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "frame-probe": ("frame-probe", {}),
    "finetune": ("finetune", {}),
    "dist": ("dist", {}),
    "dist-recompute-integration": ("dist", {"checkpoint_branch": "integration"}),
    "dist-recompute-layers": ("dist", {"checkpoint_branch": "layers"}),
    "dist-end-to-end": ("dist", {"tower": "end-to-end"}),
}
#: Full fine-tuning references the other rows are divided by, when measured: the plain CLIP fine-tune and
#: the same DiST model with its tower trained too (the baseline of spec A.3's FLOP ratio ≈ 0.42).
REFERENCES = ("finetune", "dist-end-to-end")
METHODS = tuple(VARIANTS)


def live_tensor_peak_mib(events: Any) -> float:
    """Peak of live CPU tensor memory (MiB) over a profiled region, from the profiler's allocation events
    (``profile_memory=True``): the running sum of allocated minus freed bytes, so only tensors allocated
    inside the region count. What ``torch.cuda.max_memory_allocated`` is on a GPU, without the process's
    interpreter, libraries and allocator slack that the resident set size includes."""
    from torch.autograd import DeviceType

    allocations = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"
                         and e.device_type() == DeviceType.CPU)
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def measure(variant: str, steps: int, batch: int, frames: int, device: str) -> dict[str, float]:
    """Median seconds per optimizer step and peak tensor memory (MiB) of one variant (run in this process).

    Peak memory covers building the model and optimizer, the batch and two training steps (the first
    allocates the optimizer state): CUDA's peak allocated bytes, or on CPU the profiler's live-tensor peak
    (:func:`live_tensor_peak_mib`). The timed steps come after, without the profiler.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from chronoclip.backbones import load_backbone
    from chronoclip.config import OptimConfig
    from chronoclip.engine.optim import build_optimizer
    from chronoclip.methods import get_method

    method, changes = VARIANTS[variant]
    torch.manual_seed(0)
    profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True) if device == "cpu" else None
    if profiler is not None:
        profiler.start()
    elif device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    method_cls = get_method(method)
    model = method_cls(method_cls.Config(frames=frames, **changes), load_backbone("clip-b16"),
                       [f"c{i}" for i in range(10)])
    model = model.to(device).train()
    optimizer = build_optimizer(model.param_groups(), OptimConfig(lr=1e-4))
    clip_frames = model.sample_spec().frames  # DiST: the dense frames it samples (2 x frames)
    batch_data = {"pixels": torch.randn(batch, clip_frames, 3, 224, 224, device=device),
                  "label": torch.randint(0, 10, (batch,), device=device)}

    def step() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = model.loss(model(batch_data), batch_data)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(2):
        step()
    if profiler is not None:
        profiler.stop()
        peak = live_tensor_peak_mib(profiler.profiler.kineto_results.events())
    else:
        peak = torch.cuda.max_memory_allocated() / 2**20
    times = [step() for _ in range(steps)]
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
    parser.add_argument("--methods", nargs="+", default=["frame-probe", "dist"], choices=METHODS,
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
    print(f"ViT-B/16 (random init), {args.frames} frames x 224^2 (dist: {args.frames} sparse + {2 * args.frames} "
          f"dense), batch {args.batch}, device {args.device}, median of {args.steps} steps after 2 warm-ups; peak "
          f"memory: {'peak allocated' if args.device == 'cuda' else 'peak of live tensors'} incl. weights")
    print("| method | trainable params | step (s) | peak memory (MiB) | GMACs / view |\n|---|---:|---:|---:|---:|")
    for method, r in results.items():
        print(f"| {method} | {r['trainable_params']:,} | {r['step_s']:.3f} | {r['peak_mib']:.0f} | "
              f"{r['gmacs_per_view']:.1f} |")
    for reference in (m for m in REFERENCES if m in results):
        full = results[reference]
        for method in (m for m in results if m not in REFERENCES[: REFERENCES.index(reference) + 1]):
            r = results[method]
            print(f"| ratio {method} / {reference} | | {r['step_s'] / full['step_s']:.2f}x | "
                  f"{r['peak_mib'] / full['peak_mib']:.2f}x | "
                  f"{r['gmacs_per_view'] / full['gmacs_per_view']:.2f}x |")
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
