"""CrissCross's downstream protocol end to end (spec A.6): full fine-tune of the pretrained video encoder
on every split of a UCF101 / HMDB51-style data set, dense multi-clip testing, mean over the splits —
beside the same network trained from scratch.

With ``--data M1 M2 M3`` (e.g. ``chronoclip data import ucf101 ROOT OUT split=N`` for N = 1, 2, 3) the
manifests are the official splits; without it the ``audiovisual`` world is written once and its rows
re-split three times (stratified by class, 2/3 train) as stand-ins. ``--init RUN`` takes a pretrained
``crisscross`` run; without it a small one is pretrained here on the first split's training rows
(``sampler.mode=mild``). Small encoders and short recipes keep it to minutes on 2 CPU cores; the paper's
recipe is the packaged preset ``crisscross/finetune-ucf101-8f.yaml`` (pass ``--set`` to change any key).

Run: ``python benchmarks/crisscross_finetune.py [--data M1 M2 M3] [--init RUN] [--epochs 6] [--out DIR]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from crisscross_av import MODEL, RECIPE, SNR_DB  # the sibling benchmark (this folder is on sys.path)

#: Small pretraining on the audiovisual world: the encoders and recipe of benchmarks/crisscross_av.py.
PRETRAIN = [*MODEL, *RECIPE, "model.eval_clips=2", "train.batch_size=32"]
#: The fine-tune at the pretraining's clip shape (4 frames at the world's 8 fps, 32 px), shorter than the preset.
FINETUNE = ["model.frames=4", "model.stride=1", "model.image_size=32", "model.train_clips=4", "model.eval_clips=4",
            "train.batch_size=32", "optim.lr=0.01", "schedule.milestones=[4,5]", "schedule.warmup_epochs=1",
            "train.log_every=100000", "train.keep_last=1"]


def resplit(manifest: Path, out: Path, seeds: list[int]) -> list[Path]:
    """Three stratified 2/3 : 1/3 re-splits of one manifest's rows (stand-ins for official splits)."""
    from chronoclip.data.manifest import load_manifest, write_manifest

    rows = load_manifest(manifest)
    paths = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        records = []
        for label in rows.labels:
            members = [dict(r) for r in rows if r["label"] == label]
            order = rng.permutation(len(members))
            for rank, index in enumerate(order):
                records.append({**members[index], "split": "train" if rank < round(2 * len(members) / 3) else "test"})
        paths.append(write_manifest(records, out / f"split{seed + 1}.csv"))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", help="one manifest per official split (default: the audiovisual world)")
    parser.add_argument("--init", help="a pretrained crisscross run (default: pretrain a small one here)")
    parser.add_argument("--n", type=int, default=24, help="audiovisual world: clips per class")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fine-tuning overrides")
    parser.add_argument("--out", help="folder for the data and runs (default: a temporary folder)")
    args = parser.parse_args()

    import logging

    import torch

    from chronoclip.data.worlds import make_world
    from chronoclip.engine.runs import train
    from chronoclip.methods.crisscross_finetune import pretrained_video_encoder

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    started = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="crisscross-finetune-"))
    if args.data:
        splits = [Path(m) for m in args.data]
    else:
        world = make_world("audiovisual", out / "world", seed=0, n=args.n, duration=8.0, size=32, fps=8.0,
                           sample_rate=8000, snr_db=SNR_DB, splits=(0.67, 0.0, 0.33))
        splits = resplit(world, out, [0, 1, 2])
    init = args.init
    if not init:
        init = str(out / "pretrain")
        train("crisscross", splits[0], init, backbone="tiny",
              overrides=[*PRETRAIN, f"train.epochs={args.pretrain_epochs}", "sampler.mode=mild"])
    recipe = "crisscross/finetune-ucf101-8f.yaml"
    width = f"model.video_width={pretrained_video_encoder(init).out_dim // 8}"  # both arms alike
    top1: dict[str, list[float]] = {"pretrained": [], "scratch": []}
    for index, manifest in enumerate(splits, 1):
        for name, start in (("pretrained", [f"model.init={init}", width]), ("scratch", [width])):
            run = train("crisscross-finetune", manifest, out / f"{name}-split{index}", backbone="tiny", config=recipe,
                        overrides=[*FINETUNE, f"train.epochs={args.epochs}", *start, *args.set])
            top1[name].append(float(run.metrics["top1"]))
            print(f"split {index} {name}: top1 {top1[name][-1]:.1f}", flush=True)

    print(f"\ncrisscross-finetune ({recipe} with {' '.join([*FINETUNE, *args.set])}, {args.epochs} epochs; "
          f"dense test: {run.config.model.eval_clips} clips per video, softmax averaged); init {init}\n")
    print("| start | " + " | ".join(f"split {i}" for i in range(1, len(splits) + 1)) + " | mean ± std |")
    print("|---|" + "---|" * (len(splits) + 1))
    for name, values in top1.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values)
              + f" | {statistics.mean(values):.1f} ± {spread:.1f} |")
    print(f"\ntime: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
