"""Training cost of the video baselines at real size: frozen ``frame-probe`` vs ``finetune``.

A random-init ViT-B/16 (``clip-b16``: weight values do not change cost) sees clips of 8 frames at
224². Each configuration runs in its own subprocess so its peak memory is its own (CUDA: peak
allocated; CPU: peak resident set size of the process, which includes the ~0.5 GB interpreter +
torch baseline). Prints median training-step time and peak memory side by side, with ratios.

Run: ``python benchmarks/train_cost.py [--steps 3] [--batch 1] [--frames 8] [--device auto|cpu|cuda]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

METHODS = ("frame-probe", "finetune")


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
    batch_data = {"pixels": torch.randn(batch, frames, 3, 224, 224, device=device),
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
    return {"step_s": statistics.median(times), "peak_mib": peak, "trainable_params": trainable}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
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
    for method in METHODS:
        command = [sys.executable, __file__, "--child", method, "--steps", str(args.steps), "--batch",
                   str(args.batch), "--frames", str(args.frames), "--device", args.device]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
    probe, full = results["frame-probe"], results["finetune"]
    print(f"ViT-B/16 (random init), {args.frames} frames x 224^2, batch {args.batch}, device {args.device}, "
          f"median of {args.steps} steps after 1 warm-up")
    print("| method | trainable params | step (s) | peak memory (MiB) |\n|---|---:|---:|---:|")
    for method, r in results.items():
        print(f"| {method} | {r['trainable_params']:,} | {r['step_s']:.3f} | {r['peak_mib']:.0f} |")
    print(f"| ratio frame-probe / finetune | | {probe['step_s'] / full['step_s']:.2f}x | "
          f"{probe['peak_mib'] / full['peak_mib']:.2f}x |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
