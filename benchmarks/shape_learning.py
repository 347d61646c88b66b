"""How fast can an image tower learn the universe's shapes at all? Direct supervision, side by side.

Issue 4's target (``tiny-world`` shape+colour zero-shot ≥ 90 %, pretrained in ≤ 10 minutes on 2 CPU
cores) needs the image tower to tell 10 shapes apart. This benchmark removes the text side and the
contrastive loss: each tower plus a linear head is trained on shape labels of fresh one-object
source-style images (the ``captions`` world's distribution, 64 px rendered, resized to the tower's
input), the same steps, batch, optimiser and schedule for every tower (the engine's, as ``clip`` uses
them), and test accuracy is printed every ``--eval-every`` steps. Shape accuracy under direct
supervision bounds what CLIP pretraining of the same tower reaches in the same number of steps.

Towers: ``vit`` — the ``tiny-world-init`` image tower (random init); ``vit-whiten`` — the same with the
whitened patch embedding of ``clip`` ``model.patch_init=whiten``; ``cnn`` — a three-block
convolutional reference (not loadable as a Hugging Face CLIP; a yardstick only).

Run: ``python benchmarks/shape_learning.py [--steps 600] [--towers vit vit-whiten cnn] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def render(n: int, seed: int, backbone: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` one-object source-style images as the backbone's normalised input ``[n, 3, S, S]`` and
    their shape indices ``[n]``."""
    from chronoclip.data.worlds.universe import SHAPES, STYLES, random_thing, render_scene
    from chronoclip.eval.worldclip import RENDER_SIZE, backbone_pixels

    rng = np.random.default_rng(seed)
    things = [random_thing(rng) for _ in range(n)]
    pixels = backbone_pixels([render_scene([t], RENDER_SIZE, STYLES["source"], rng) for t in things], backbone)
    return pixels, torch.tensor([SHAPES.index(t.shape) for t in things])


class TowerClassifier(nn.Module):
    """A backbone's image tower (``[B,3,S,S] -> [B,D]`` projected embedding) and a linear shape head."""

    def __init__(self, backbone: nn.Module, classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.embed_dim, classes)  # type: ignore[arg-type]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.encode_image(pixels))  # type: ignore[operator]


def conv_reference(classes: int, width: int = 32) -> nn.Module:
    """Three 3×3 conv blocks (width, 2·width, 4·width), two 2× max-pools, global average pool, linear."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.GELU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes))


def build(tower: str, train_pixels: torch.Tensor, classes: int) -> nn.Module:
    from chronoclip.backbones import load_backbone
    from chronoclip.backbones.patch_whitening import whiten_patch_embedding

    if tower == "cnn":
        return conv_reference(classes)
    backbone = load_backbone("tiny-world-init")
    backbone.freeze(image=False, text=True)
    if tower == "vit-whiten":
        whiten_patch_embedding(backbone, train_pixels[:2000])
    return TowerClassifier(backbone, classes)


def train_tower(model: nn.Module, data: dict[str, tuple[torch.Tensor, torch.Tensor]], args: argparse.Namespace
                ) -> dict[str, object]:
    """The ``tiny-world`` recipe's optimiser and schedule through the engine (AdamW ``--lr``, wd 0.1 on
    weight matrices only, betas 0.9/0.98; 50 warm-up steps, then cosine); test top1 every ``--eval-every``
    steps."""
    from chronoclip.config import OptimConfig, ScheduleConfig
    from chronoclip.engine.optim import build_optimizer, build_scheduler
    from chronoclip.methods.base import ParamGroup

    (train_x, train_y), (test_x, test_y) = data["train"], data["test"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = build_optimizer([ParamGroup("tower", params)],
                                OptimConfig(name="adamw", lr=args.lr, weight_decay=0.1, betas=(0.9, 0.98)))
    schedule = build_scheduler(optimiser, ScheduleConfig(name="cosine", warmup_epochs=1.0), 50, args.steps)
    generator = torch.Generator().manual_seed(0)
    curve, started = {}, time.perf_counter()
    for step in range(1, args.steps + 1):
        model.train()
        index = torch.randint(0, len(train_x), (args.batch_size,), generator=generator)
        loss = F.cross_entropy(model(train_x[index]), train_y[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                curve[step] = float((model(test_x).argmax(1) == test_y).float().mean()) * 100
            print(f"  step {step}: loss {loss.item():.3f}, test top1 {curve[step]:.1f} %", flush=True)
    seconds = time.perf_counter() - started
    return {"curve": curve, "seconds": seconds, "ms_per_step": 1000 * seconds / args.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--towers", nargs="+", default=["vit", "vit-whiten", "cnn"],
                        choices=["vit", "vit-whiten", "cnn"])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train", type=int, default=8000, help="training images (seed 1)")
    parser.add_argument("--test", type=int, default=1000, help="test images (seed 2)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from chronoclip.backbones import load_backbone
    from chronoclip.data.worlds.universe import SHAPES

    reference = load_backbone("tiny-world-init")
    data = {"train": render(args.train, 1, reference), "test": render(args.test, 2, reference)}
    results = {}
    for tower in args.towers:
        torch.manual_seed(0)
        print(f"{tower}:", flush=True)
        results[tower] = train_tower(build(tower, data["train"][0], len(SHAPES)), data, args)

    steps = sorted(results[args.towers[0]]["curve"])  # type: ignore[call-overload]
    print(f"\nshape top1 (%) on {args.test} fresh images (chance 10) after N steps of batch {args.batch_size}")
    print("| tower | " + " | ".join(str(s) for s in steps) + " | ms/step |\n|---|" + "---:|" * (len(steps) + 1))
    for tower, result in results.items():
        curve = result["curve"]
        print(f"| {tower} | " + " | ".join(f"{curve[s]:.1f}" for s in steps)  # type: ignore[index]
              + f" | {result['ms_per_step']:.0f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
