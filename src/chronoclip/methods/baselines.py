"""The two baselines every video method is compared with.

- ``frame-probe``: a frozen CLIP image tower embeds each frame, frames are averaged, a linear head
  classifies. Averaging makes it blind to frame order — on the ``motion`` world's order-only classes
  it is at chance by construction, which is what a temporal method must beat.
- ``finetune``: the same model with the image tower trainable (at a smaller learning rate) — the
  costly reference for parameter-efficient methods such as DiST.

Example:
    >>> from chronoclip.backbones import load_backbone                     # doctest: +SKIP
    >>> model = FrameProbe(FrameProbeConfig(frames=8), load_backbone("tiny"), ["left", "right"])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chronoclip.data.datasets import SampleSpec
from chronoclip.errors import ConfigError
from chronoclip.methods.base import Batch, FrozenFeatures, Method, ParamGroup
from chronoclip.methods.common import frame_embeddings, top_predictions


@dataclass
class FrameProbeConfig:
    """Configuration of ``frame-probe`` and ``finetune``.

    Attributes:
        frames: frames sampled per video (T).
        train_sampling: frame sampling at training time; ``uniform`` keeps samples fixed so the
            frozen features can be cached, ``random`` (TSN) varies them per epoch.
        augment: random resized crop + flip at training time (disables the feature cache).
        feature_norm: standardise the pooled features with a BatchNorm without affine parameters before
            the head (the MAE linear-probe recipe: the head sees unit-scale features whatever the tower).
        dropout: dropout before the head.
        label_smoothing: cross-entropy label smoothing.
        eval_clips, eval_crops: multi-view testing (temporal clips × 1 or 3 crops).
        backbone_lr_scale: ``finetune`` only: the image tower's lr relative to the head's.
    """

    frames: int = 8
    train_sampling: str = "uniform"
    augment: bool = False
    feature_norm: bool = True
    dropout: float = 0.0
    label_smoothing: float = 0.0
    eval_clips: int = 1
    eval_crops: int = 1
    backbone_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError(f"model.frames={self.frames} must be at least 1")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("model.dropout and model.label_smoothing must be in [0, 1)")
        if self.backbone_lr_scale <= 0:
            raise ConfigError(f"model.backbone_lr_scale={self.backbone_lr_scale} must be positive")


class FrameProbe(Method):
    """Frozen image tower → per-frame embeddings ``[B,T,D]`` → mean over T → (norm) → linear head ``[B,C]``."""

    name = "frame-probe"
    Config = FrameProbeConfig
    protocols = ("classify", "linear_probe")
    train_image_tower = False

    def __init__(self, cfg: FrameProbeConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        if len(class_names) < 2:
            raise ConfigError(f"{self.name} needs at least 2 classes, got {class_names}")
        backbone.freeze(image=not self.train_image_tower, text="all")
        self.norm = nn.BatchNorm1d(backbone.embed_dim, affine=False) if cfg.feature_norm else nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(backbone.embed_dim, len(class_names))

    def sample_spec(self) -> SampleSpec:
        cfg: FrameProbeConfig = self.cfg
        return SampleSpec(modality="video", frames=cfg.frames, image_size=self.backbone.image_size,
                          mean=tuple(self.backbone.mean), std=tuple(self.backbone.std),
                          train_sampling=cfg.train_sampling, eval_sampling="uniform", augment=cfg.augment,
                          label=True, eval_clips=cfg.eval_clips, eval_crops=cfg.eval_crops)

    def frame_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W]`` → L2-normalised frame embeddings ``[B,T,D]`` (no graph when the tower is frozen)."""
        with torch.set_grad_enabled(self.train_image_tower and torch.is_grad_enabled()):
            features = self.backbone.encode_video_frames(pixels)
        return F.normalize(features, dim=-1)

    def frozen_features(self) -> FrozenFeatures | None:
        return None if self.train_image_tower else frame_embeddings(self.backbone)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        features = batch["features"] if "features" in batch else self.frame_features(batch["pixels"])
        return {"logits": self.head(self.dropout(self.norm(features.mean(dim=1))))}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        cfg: FrameProbeConfig = self.cfg
        ce = F.cross_entropy(outputs["logits"], batch["label"], label_smoothing=cfg.label_smoothing)
        return {"loss": ce, "ce": ce}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return top_predictions(self(batch)["logits"], self.class_names)


class FineTune(FrameProbe):
    """``frame-probe`` with the image tower trainable at ``backbone_lr_scale`` × the head's lr."""

    name = "finetune"
    train_image_tower = True

    def param_groups(self) -> list[ParamGroup]:
        cfg: FrameProbeConfig = self.cfg
        tower = [p for p in self.backbone.parameters() if p.requires_grad]
        head = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("backbone.")]
        return [ParamGroup("backbone", tower, lr_scale=cfg.backbone_lr_scale), ParamGroup("head", head)]
