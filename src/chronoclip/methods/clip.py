"""``clip``: contrastive image-text pretraining of a whole CLIP (how ``tiny-world`` is made).

Both towers and the temperature train from the backbone's initial weights (random for an architecture
preset such as ``tiny-world-init``) with the symmetric InfoNCE loss over the batch (all processes' rows
under DDP). Data: a manifest of images with a ``text`` caption per row, e.g. the ``captions`` world.
The engine validates and tests it by image↔text retrieval over the split's own captions and selects the
best checkpoint by text→image R@1.

``chronoclip backbone export RUN DIR`` writes the trained backbone as a Hugging Face CLIP folder.

- [0] Radford et al., Learning Transferable Visual Models From Natural Language Supervision, 2021,
  https://arxiv.org/abs/2103.00020

Example:
    >>> from chronoclip.backbones import load_backbone
    >>> model = ClipPretrain(ClipConfig(), load_backbone("tiny"), [])
    >>> model.sample_spec().text, model.sample_spec().modality
    (True, 'image')
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from chronoclip.backbones.patch_whitening import whiten_patch_embedding
from chronoclip.config import require_at_least, require_one_of
from chronoclip.data.datasets import SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ConfigError
from chronoclip.methods.base import Batch, Method
from chronoclip.methods.contrastive import symmetric_info_nce

log = logging.getLogger(__name__)

#: Starts of the image tower's patch embedding (see ``ClipConfig.patch_init``).
PATCH_INITS = ("random", "whiten")


@dataclass
class ClipConfig:
    """Configuration of ``clip``.

    Attributes:
        max_logit_scale: cap of the learned temperature's multiplier (CLIP clamps at 100).
        initial_temperature: if positive, reset the temperature to this value (CLIP starts at 0.07);
            0 keeps the backbone's.
        context_length: text tokens per caption (0 = the text tower's maximum).
        patch_init: ``random`` keeps the backbone's patch embedding; ``whiten`` starts it as the whitening
            filters of the training images' patches (:mod:`chronoclip.backbones.patch_whitening`) — for
            pretraining from scratch, where it speeds the image tower's early learning up.
        patch_init_images: training images (evenly spaced over the split) the patch statistics use.
    """

    max_logit_scale: float = 100.0
    initial_temperature: float = 0.0
    context_length: int = 0
    patch_init: str = "random"
    patch_init_images: int = 2000

    def __post_init__(self) -> None:
        if self.max_logit_scale <= 1:
            raise ConfigError(f"model.max_logit_scale={self.max_logit_scale} must exceed 1")
        if self.initial_temperature < 0 or self.context_length < 0:
            raise ConfigError("model.initial_temperature and model.context_length must be >= 0")
        require_one_of({"model.patch_init": (self.patch_init, PATCH_INITS)})
        require_at_least({"model.patch_init_images": self.patch_init_images}, 1)


class ClipPretrain(Method):
    """Image tower ``[B,3,H,W] -> [B,D]`` and text tower ``captions -> [B,D]``, symmetric InfoNCE."""

    name = "clip"
    Config = ClipConfig
    protocols = ("retrieval", "zero_shot", "linear_probe")
    run_protocol = "retrieval"
    best_metric = ("t2v_R@1", "max")

    def __init__(self, cfg: ClipConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        backbone.freeze(image=False, text=False, logit_scale=True)
        if cfg.initial_temperature > 0:
            with torch.no_grad():
                backbone.model.logit_scale.fill_(math.log(1 / cfg.initial_temperature))

    def initialise(self, train_rows: Manifest) -> None:
        """With ``patch_init=whiten``: whiten the patch embedding on evenly spaced training images."""
        cfg: ClipConfig = self.cfg
        if cfg.patch_init != "whiten":
            return
        images, count = self.dataset(train_rows, train=False), len(train_rows)  # one sample per row
        picked = torch.linspace(0, count - 1, min(cfg.patch_init_images, count)).round().long().unique()
        side = self.backbone.image_size
        pixels = torch.stack([images[int(i)]["pixels"].reshape(3, side, side) for i in picked])
        pairs = whiten_patch_embedding(self.backbone, pixels)
        log.info("%s: patch embedding whitened on %d training images (%d filter pairs)", self.name, len(pixels), pairs)

    def sample_spec(self) -> SampleSpec:
        # no flips or crops: captions name left / right and positions
        return SampleSpec(modality="image", frames=1, image_size=self.backbone.image_size,
                          mean=tuple(self.backbone.mean), std=tuple(self.backbone.std), text=True, label=False)

    def logit_scale(self) -> torch.Tensor:
        """The temperature's multiplier, clamped at ``max_logit_scale``."""
        cfg: ClipConfig = self.cfg
        return self.backbone.logit_scale.clamp(max=cfg.max_logit_scale)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``visual_embeddings`` and ``text_embeddings`` ``[B, D]``, L2-normalised."""
        cfg: ClipConfig = self.cfg
        pixels = batch["pixels"]
        if pixels.dim() == 5:  # [B, T=1, 3, H, W]: a still is a one-frame clip
            pixels = pixels[:, 0]
        tokens = self.backbone.tokenize(batch["text"], cfg.context_length or None)
        return {"visual_embeddings": self.backbone.encode_image(pixels, normalize=True),
                "text_embeddings": self.backbone.encode_text(tokens, normalize=True)}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        scale = self.logit_scale()
        loss = symmetric_info_nce(outputs["visual_embeddings"], outputs["text_embeddings"], scale)
        return {"loss": loss, "info_nce": loss.detach(), "logit_scale": scale.detach()}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        outputs = self(batch)
        scores = outputs["visual_embeddings"] @ outputs["text_embeddings"].T
        return [{"best_caption": batch["text"][int(j)], "similarity": round(float(scores[i, j]), 4)}
                for i, j in enumerate(scores.argmax(dim=1))]
