"""``crisscross-finetune``: action classification by full fine-tuning of a CrissCross video encoder (spec A.6).

The downstream protocol CrissCross reports on UCF101 and HMDB51 (visual only): the R(2+1)D video
encoder of a pretrained ``crisscross`` run (``model.init=RUN``; empty = random init, the from-scratch
reference) is trained end to end with a linear head (orthogonal init, zero bias) on dense clips —
``frames`` consecutive frames ``stride`` source frames apart — with the final pooling swapped from the
pretraining average to an adaptive **max** pool. Every epoch draws ``train_clips`` random clips per
video; testing averages the softmax over ``eval_clips`` clips spread evenly over each video ("dense").
The recipe (SGD, momentum 0.9, no weight decay, 2 warm-up epochs, ×γ steps) is the packaged preset
``crisscross/finetune-ucf101-8f.yaml`` (``finetune-hmdb51-8f.yaml``: γ 0.1); the official numbers are
the mean over the 3 splits (``benchmarks/crisscross_finetune.py`` trains and averages them).

Shapes: ``pixels [B, T, 3, S, S]`` → R(2+1)D map ``[B, 8·width, T', S', S']`` → max pool ``[B, 8·width]``
→ logits ``[B, C]``.

Example:
    >>> from chronoclip.backbones import load_backbone
    >>> model = CrissCrossFinetune(CrissCrossFinetuneConfig(video_width=4, image_size=32),
    ...                            load_backbone("tiny"), ["a", "b"])
    >>> model.sample_spec().train_sampling, model.sample_spec().eval_clips
    ('dense', 10)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from chronoclip.backbones.av import R2Plus1D
from chronoclip.config import require_at_least, require_one_of
from chronoclip.data.av_augment import IMAGENET_MEAN, IMAGENET_STD
from chronoclip.data.datasets import ManifestDataset, SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ConfigError
from chronoclip.methods.base import Batch, Method
from chronoclip.methods.common import top_predictions

log = logging.getLogger(__name__)

POOLS = ("max", "avg")


@dataclass
class CrissCrossFinetuneConfig:
    """Configuration of ``crisscross-finetune`` (defaults: the spec's 8-frame UCF101 / HMDB51 protocol).

    Attributes:
        init: a ``crisscross`` run folder whose video encoder (best checkpoint) starts the training;
            empty = random init (the from-scratch reference).
        video_width: R(2+1)D first-stage channels (with ``init``: the run's, checked when training starts).
        frames, stride: a clip is ``frames`` consecutive frames ``stride`` source frames apart.
        image_size: crop side (224 in the protocol; pretraining was at 112).
        pool: ``max`` (the protocol's adaptive max pool) or ``avg`` (pretraining's).
        dropout: before the head (0.1 in the AudioSet configs only).
        augment: random resized crop + horizontal flip of each training clip.
        train_clips: random clips drawn per video per epoch.
        eval_clips: evenly spread test clips per video, softmax averaged.
    """

    init: str = ""
    video_width: int = 64
    frames: int = 8
    stride: int = 2
    image_size: int = 224
    pool: str = "max"
    dropout: float = 0.0
    augment: bool = True
    train_clips: int = 10
    eval_clips: int = 10

    def __post_init__(self) -> None:
        require_one_of({"model.pool": (self.pool, POOLS)})
        require_at_least({"model.video_width": self.video_width, "model.frames": self.frames,
                          "model.stride": self.stride, "model.image_size": self.image_size,
                          "model.train_clips": self.train_clips, "model.eval_clips": self.eval_clips})
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")


def pretrained_video_encoder(path: str) -> R2Plus1D:
    """The R(2+1)D video encoder of the ``crisscross`` run at ``path``, with its best weights."""
    from chronoclip.engine.runs import load_run
    from chronoclip.methods.crisscross import CrissCross

    run = load_run(path)
    if not isinstance(run.method, CrissCross) or run.method.video_net is None:
        raise ConfigError(f"model.init={path}: a crisscross run with the r2plus1d video encoder is needed, got "
                          f"a '{run.config.method}' run"
                          + (" with model.video_encoder=clip (fine-tune its tower with `finetune`)"
                             if isinstance(run.method, CrissCross) else ""))
    return run.method.video_net


class CrissCrossFinetune(Method):
    """R(2+1)D (pretrained or random) → max or average pool → dropout → linear head ``[B, C]``."""

    name = "crisscross-finetune"
    Config = CrissCrossFinetuneConfig
    protocols = ("classify",)

    def __init__(self, cfg: CrissCrossFinetuneConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        if len(class_names) < 2:
            raise ConfigError(f"{self.name} needs at least 2 classes, got {class_names}")
        backbone.freeze(image="all", text="all")  # the CLIP backbone is not used
        self.video_net = R2Plus1D(cfg.video_width)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.video_net.out_dim, len(class_names))
        nn.init.orthogonal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def initialise(self, train_rows: Manifest) -> None:
        """Copy the video encoder of the ``model.init`` run (its best checkpoint), if one is given."""
        cfg: CrissCrossFinetuneConfig = self.cfg
        if not cfg.init:
            return
        pretrained = pretrained_video_encoder(cfg.init)
        width = pretrained.out_dim // 8
        if width != cfg.video_width:
            raise ConfigError(f"model.init={cfg.init}: its video encoder has width {width}, this model "
                              f"{cfg.video_width}; set model.video_width={width}")
        self.video_net.load_state_dict(pretrained.state_dict())
        log.info("%s: video encoder from %s (width %d)", self.name, cfg.init, width)

    def sample_spec(self) -> SampleSpec:
        cfg: CrissCrossFinetuneConfig = self.cfg
        return SampleSpec(modality="video", frames=cfg.frames, image_size=cfg.image_size, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, train_sampling="dense", eval_sampling="dense", stride=cfg.stride,
                          augment=cfg.augment, label=True, eval_clips=cfg.eval_clips)

    def dataset(self, rows: Manifest, train: bool, seed: int = 0) -> Dataset[dict[str, Any]]:
        cfg: CrissCrossFinetuneConfig = self.cfg
        return ManifestDataset(rows, self.sample_spec(), self.class_names, train=train, seed=seed,
                               repeats=cfg.train_clips if train else 1)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``pixels [B, T, 3, S, S]`` → ``logits [B, C]``."""
        cfg: CrissCrossFinetuneConfig = self.cfg
        feature_map = self.video_net.feature_map(batch["pixels"])
        pooled = feature_map.amax(dim=(2, 3, 4)) if cfg.pool == "max" else feature_map.mean(dim=(2, 3, 4))
        return {"logits": self.head(self.dropout(pooled))}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(outputs["logits"], batch["label"])
        return {"loss": ce, "ce": ce}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return top_predictions(self(batch)["logits"], self.class_names)
