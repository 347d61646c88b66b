"""``dist``: DiST — a frozen CLIP image tower on sparse frames, a small dense-frame temporal encoder and an
integration branch that exchanges with it at every tapped layer (Qing et al., ICCV 2023; spec A).

Data: each sample holds ``αT`` dense frames (``SampleSpec.frames``); the method takes the strided subset
``0, α, 2α, …`` (``T`` frames) for the image tower, which runs on those frames only (patch embedding
included; the released code embeds every dense frame and drops half) under ``no_grad`` with every block
output tapped. The trainable branch (:mod:`chronoclip.methods.dist.branch`) maps taps + dense frames to a
video embedding ``e [B, E]``; the default head is the paper's: ``100 · cos(e, t_c)`` against frozen text
embeddings of the bare class names, computed once at construction (``head=linear`` for label sets with no
meaningful names).

Ablations (``model.ablation``), exact reductions of the same network with the disconnected parts frozen:

- ``spatial-only`` (spec A.8-6): the video query, and the out-projection and MLP output of every pooling
  layer's temporal cross-attention, are zero, so ``e = LN(W_s mean_t CLS^(L)) P`` — frame-order invariant
  and blind to the temporal encoder; only ``W_s``, the LayerNorm and ``P`` (and a linear head) train, and
  the forward computes just that (the test suite checks it equals the full network with those zeros).
- ``no-temporal-encoder`` (A.8-7): both exchange maps are zero; the temporal stem, T-blocks and the maps
  are frozen, so the dense-only frames cannot reach the output.

``model.tower=end-to-end`` trains the image tower with the branch (at ``optim.lr``, without ``lr_mult``):
the same model fine-tuned end to end, the baseline of spec A.3's cost estimate (``benchmarks/train_cost.py``).

- [0] Qing et al., Disentangling Spatial and Temporal Learning for Efficient Image-to-Video Transfer
  Learning, ICCV 2023, https://arxiv.org/abs/2309.07911

Example:
    >>> import torch
    >>> from chronoclip.backbones import load_backbone
    >>> cfg = DiSTConfig(frames=2, integration_dim=32, temporal_dim=8, pooling_layers=1)
    >>> model = DiST(cfg, load_backbone("tiny"), ["moving left", "moving right"])
    >>> model.sample_spec().frames
    4
    >>> model({"pixels": torch.zeros(3, 4, 3, 32, 32)})["logits"].shape
    torch.Size([3, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from chronoclip.config import require_one_of
from chronoclip.data.datasets import SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.data.mixup import MixConfig
from chronoclip.errors import ConfigError
from chronoclip.methods.base import Batch, Method, ParamGroup
from chronoclip.methods.common import top_predictions
from chronoclip.methods.dist.branch import RECOMPUTE, BranchShape, DiSTBranch
from chronoclip.methods.dist.official import load_official_checkpoint

HEADS = ("text", "linear")
ABLATIONS = ("none", "spatial-only", "no-temporal-encoder")
#: ``frozen`` is DiST; ``end-to-end`` trains the image tower too (spec A.3's full fine-tuning of the same
#: model): the reference that DiST's training cost is measured against, not a DiST recipe.
TOWER_MODES = ("frozen", "end-to-end")
SAMPLINGS = ("uniform", "segment", "random")
#: Parameters without weight decay besides the 1-D ones: tokens and position embeddings (spec A.4).
TOKEN_PARAMETERS = ("frame_cls", "time_pos", "frame_query", "video_query")


@dataclass
class DiSTConfig:
    """Configuration of ``dist``. The defaults are the paper's ViT-B/16 K400 8+16f architecture; the
    recipe presets are ``chronoclip/configs/dist/*.yaml`` and ``dist/motion.yaml`` is what
    ``chronoclip train dist`` uses without ``--config``.

    Attributes:
        frames: ``T``, sparse frames through the image tower.
        temporal_ratio: ``α`` (the spec's γ, SPARSE_SAMPLE_ALPHA): the data delivers ``α·T`` dense frames.
        integration_dim: ``I``, width of the integration branch (384 = D/2 for B/16).
        temporal_dim: ``C``, width of the temporal encoder (96 = D/8 for B/16).
        layers: tapped tower layers (1..L = block outputs, 0 = after the stem, negative from the end);
            empty = every block output, as released.
        pooling_layers: query-pooling layers (4 for K400, 2 for SSv2).
        pooling_heads: attention heads of the pooling (0 = ``max(1, I // 64)``, as released).
        temporal_kernel: temporal kernel of the T-blocks and the integration temporal FFN (odd).
        stem_kernel: temporal kernel of the temporal stem (odd).
        integration_mlp_ratio, integration_temporal_ratio, temporal_mlp_ratio: hidden widths (1, 1/4, 1).
        head: ``text`` (scaled cosine against frozen text embeddings of the bare class names) or ``linear``.
        logit_scale: the cosine head's fixed multiplier (100 = CLIP's ``exp(ln 100)``, not trained).
        ablation: ``none``, ``spatial-only`` or ``no-temporal-encoder`` (see the module docstring).
        lr_mult: every DiST parameter's lr relative to ``optim.lr`` (NEW_NET_LRMULT, 10).
        mixup_alpha, cutmix_alpha, mix_prob, mix_switch_prob: batch mixup / cutmix (0.8, 1.0, 1, 0.5 in the
            paper; 0 = off).
        label_smoothing: ε of the (soft-target) cross-entropy (0.1 in the paper).
        train_sampling, eval_sampling: dense-frame sampling (``random`` = TSN segment-based training
            sampling, ``segment`` = segment centres).
        augment: random resized crop (+ flip if ``flip``) at training time.
        flip: horizontal flips in ``augment`` (off where direction is the label: SSv2, ``motion``).
        eval_clips, eval_crops: multi-view testing (3 × 1 in the paper).
        init_checkpoint: an official DiST checkpoint (``.pyth``) whose branch weights initialise the model
            (see :mod:`chronoclip.methods.dist.official`); empty = random init.
        checkpoint_branch: activation checkpointing in the branch, for large batches or long clips (results
            unchanged): ``none``; ``integration`` reruns each integration block in backward instead of
            keeping its activations; ``layers`` reruns whole exchange layers (least memory, slowest). The
            trade-off is measured in ``benchmarks/train_cost.py``.
        tower: ``frozen`` (DiST) or ``end-to-end`` (the image tower trains too; the cost baseline of spec
            A.3, see the module docstring).
    """

    frames: int = 8
    temporal_ratio: int = 2
    integration_dim: int = 384
    temporal_dim: int = 96
    layers: list[int] = field(default_factory=list)
    pooling_layers: int = 4
    pooling_heads: int = 0
    temporal_kernel: int = 3
    stem_kernel: int = 5
    integration_mlp_ratio: float = 1.0
    integration_temporal_ratio: float = 0.25
    temporal_mlp_ratio: float = 1.0
    head: str = "text"
    logit_scale: float = 100.0
    ablation: str = "none"
    lr_mult: float = 10.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    label_smoothing: float = 0.0
    train_sampling: str = "random"
    eval_sampling: str = "segment"
    augment: bool = False
    flip: bool = True
    eval_clips: int = 1
    eval_crops: int = 1
    init_checkpoint: str = ""
    checkpoint_branch: str = "none"
    tower: str = "frozen"

    def __post_init__(self) -> None:
        positive = {"frames": self.frames, "temporal_ratio": self.temporal_ratio,
                    "integration_dim": self.integration_dim, "temporal_dim": self.temporal_dim,
                    "eval_clips": self.eval_clips, "logit_scale": self.logit_scale, "lr_mult": self.lr_mult}
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"model.{key}={value} must be positive")
        if self.pooling_layers < 1 or self.pooling_heads < 0:
            raise ConfigError(f"model.pooling_layers={self.pooling_layers} must be >= 1 and "
                              f"model.pooling_heads={self.pooling_heads} >= 0")
        for key in ("temporal_kernel", "stem_kernel"):
            if getattr(self, key) < 1 or getattr(self, key) % 2 == 0:
                raise ConfigError(f"model.{key}={getattr(self, key)} must be odd (centred kernels)")
        for key in ("integration_mlp_ratio", "integration_temporal_ratio", "temporal_mlp_ratio"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key}={getattr(self, key)} must be positive")
        require_one_of({"model.head": (self.head, HEADS), "model.ablation": (self.ablation, ABLATIONS),
                        "model.checkpoint_branch": (self.checkpoint_branch, RECOMPUTE),
                        "model.tower": (self.tower, TOWER_MODES),
                        "model.train_sampling": (self.train_sampling, SAMPLINGS),
                        "model.eval_sampling": (self.eval_sampling, SAMPLINGS)})
        if self.eval_crops not in (1, 3):
            raise ConfigError(f"model.eval_crops={self.eval_crops} must be 1 or 3")
        try:
            self.mixing()
        except ValueError as exc:
            raise ConfigError(f"model.mixup_alpha / cutmix_alpha / mix_prob / mix_switch_prob / "
                              f"label_smoothing: {exc}") from exc

    def mixing(self) -> MixConfig:
        """The batch mixing (and label smoothing) of training."""
        return MixConfig(self.mixup_alpha, self.cutmix_alpha, self.mix_prob, self.mix_switch_prob,
                         self.label_smoothing)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ_c targets_c log softmax(logits)_c`` (``[B, C]`` both)."""
    return -(targets * logits.float().log_softmax(dim=-1)).sum(dim=-1).mean()


class DiST(Method):
    """Frozen tower on ``T`` sparse frames + trainable DiST branch on ``αT`` dense frames → ``logits [B, K]``."""

    name = "dist"
    Config = DiSTConfig
    protocols = ("classify",)
    default_config: ClassVar[str] = "dist/motion.yaml"

    def __init__(self, cfg: DiSTConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        if len(class_names) < 2:
            raise ConfigError(f"{self.name} needs at least 2 classes, got {class_names}")
        backbone.freeze(image=cfg.tower == "frozen", text="all")
        if cfg.tower == "end-to-end":  # the branch reads block outputs, never the tower's head: keep it out of DDP
            backbone.vision.post_layernorm.requires_grad_(False)
            backbone.model.visual_projection.requires_grad_(False)
        self.mixing = cfg.mixing()
        self.layers = self._tapped_layers(cfg.layers, backbone.num_layers)
        self.last_layer = backbone.num_layers
        heads = cfg.pooling_heads or max(1, cfg.integration_dim // 64)
        if cfg.integration_dim % heads:
            raise ConfigError(f"model.integration_dim={cfg.integration_dim} must be divisible by the "
                              f"{heads} pooling heads (model.pooling_heads)")
        self.branch = DiSTBranch(BranchShape(
            tower_width=backbone.vision_width, grid=backbone.grid_size, patch_size=backbone.patch_size,
            frames=cfg.frames, ratio=cfg.temporal_ratio, layers=len(self.layers),
            integration=cfg.integration_dim, temporal=cfg.temporal_dim, embed_dim=backbone.embed_dim,
            pooling_layers=cfg.pooling_layers, pooling_heads=heads, temporal_kernel=cfg.temporal_kernel,
            stem_kernel=cfg.stem_kernel, integration_mlp_ratio=cfg.integration_mlp_ratio,
            integration_temporal_ratio=cfg.integration_temporal_ratio, temporal_mlp_ratio=cfg.temporal_mlp_ratio),
            recompute=cfg.checkpoint_branch)
        self.head: nn.Module | None = nn.Linear(backbone.embed_dim, len(class_names)) \
            if cfg.head == "linear" else None
        if cfg.head == "text":
            with torch.no_grad():  # the text tower runs once, here, never per step
                text = backbone.encode_text(self.class_names, normalize=True)
            self.register_buffer("text_features", text, persistent=False)
        self._apply_ablation(cfg.ablation)

    def initialise(self, train_rows: Manifest) -> None:
        """Load ``model.init_checkpoint`` (an official DiST checkpoint), then zero what the ablation removes."""
        cfg: DiSTConfig = self.cfg
        if cfg.init_checkpoint:
            load_official_checkpoint(self, cfg.init_checkpoint)
            self._apply_ablation(cfg.ablation)

    @staticmethod
    def _tapped_layers(layers: list[int], depth: int) -> list[int]:
        """The tapped layers as block indices ``0..L`` (every block output when empty), in tower order."""
        if not layers:
            return list(range(1, depth + 1))
        resolved = [layer + depth + 1 if layer < 0 else layer for layer in layers]
        if any(not 0 <= layer <= depth for layer in resolved) or len(set(resolved)) != len(resolved):
            raise ConfigError(f"model.layers={list(layers)}: need distinct layers in [-{depth + 1}, {depth}] "
                              f"for an image tower of {depth} blocks (1..{depth} = block outputs)")
        if resolved != sorted(resolved):
            raise ConfigError(f"model.layers={list(layers)} must be in tower order (shallow to deep)")
        return resolved

    def _apply_ablation(self, ablation: str) -> None:
        """Zero and freeze what an ablation removes (see the module docstring)."""
        branch = self.branch
        if ablation == "spatial-only":
            zeroed: list[torch.Tensor] = [branch.video_query]
            for pool in branch.pooling_layers():
                for linear in (pool.video_attn.attn.out_proj, pool.video_mlp.proj):
                    zeroed += [linear.weight, linear.bias]
            keep = {id(p) for m in (branch.skip, branch.norm_post) for p in m.parameters()} | {id(branch.proj)}
            frozen = [p for p in branch.parameters() if id(p) not in keep]
        elif ablation == "no-temporal-encoder":
            layers = branch.exchange_layers()
            maps: list[nn.Module] = [m for layer in layers for m in (layer.to_temporal, layer.to_integration)]
            zeroed = [p for m in maps for p in m.parameters()]
            encoder = [branch.temporal_stem, *(layer.temporal_block for layer in layers), *maps]
            frozen = [p for m in encoder for p in m.parameters()]
        else:
            return
        with torch.no_grad():
            for param in zeroed:
                param.zero_()
        for param in frozen:
            param.requires_grad_(False)

    # ------------------------------------------------------------------------------------ data
    def sample_spec(self) -> SampleSpec:
        cfg: DiSTConfig = self.cfg
        return SampleSpec(modality="video", frames=cfg.frames * cfg.temporal_ratio,
                          image_size=self.backbone.image_size, mean=tuple(self.backbone.mean),
                          std=tuple(self.backbone.std), train_sampling=cfg.train_sampling,
                          eval_sampling=cfg.eval_sampling, augment=cfg.augment, flip=cfg.flip, label=True,
                          eval_clips=cfg.eval_clips, eval_crops=cfg.eval_crops)

    # ------------------------------------------------------------------------------------ model
    def sparse_frames(self, dense: torch.Tensor) -> torch.Tensor:
        """The image tower's frames ``[B, T, 3, H, W]``: dense frames ``0, α, 2α, …``."""
        cfg: DiSTConfig = self.cfg
        return dense[:, ::cfg.temporal_ratio]

    def tower_taps(self, dense: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The tower on the sparse frames only — frozen: without autograd — the tapped block outputs
        ``[B·T, 1+N, D]`` (in :attr:`layers` order) and the last block's CLS token ``[B·T, D]``."""
        cfg: DiSTConfig = self.cfg
        sparse = self.sparse_frames(dense).flatten(0, 1)
        with torch.set_grad_enabled(cfg.tower == "end-to-end" and torch.is_grad_enabled()):
            taps = self.backbone.image_tokens(sparse, sorted({*self.layers, self.last_layer}))
        return [taps[layer] for layer in self.layers], taps[self.last_layer][:, 0]

    def embed(self, dense: torch.Tensor) -> torch.Tensor:
        """Video embeddings ``e [B, E]`` of dense clips ``[B, αT, 3, H, W]``."""
        cfg: DiSTConfig = self.cfg
        expected = cfg.frames * cfg.temporal_ratio
        size = self.backbone.image_size
        if dense.dim() != 5 or dense.shape[1] != expected or dense.shape[-2:] != (size, size):
            raise ValueError(f"{self.name}: pixels must be [B, {expected}, 3, {size}, {size}] "
                             f"(frames × temporal_ratio dense frames), got {tuple(dense.shape)}")
        taps, last_cls = self.tower_taps(dense)
        if cfg.ablation == "spatial-only":  # the zeroed video path contributes exactly 0: skip running it
            return self.branch.output(0.0, last_cls)
        return self.branch(taps, last_cls, dense)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """``[B, E]`` → ``[B, K]``: ``scale · cos(e, t_c)`` (text head) or the linear head."""
        if self.head is not None:
            return self.head(embedding)
        cfg: DiSTConfig = self.cfg
        text = cast(torch.Tensor, self.text_features)
        return cfg.logit_scale * F.normalize(embedding, dim=-1) @ text.to(embedding.dtype).T

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``logits [B, K]``; in training with mixing on, also the mixed soft ``targets [B, K]``."""
        pixels = batch["pixels"]
        outputs: dict[str, torch.Tensor] = {}
        if self.training and self.mixing.enabled and "label" in batch:
            pixels, outputs["targets"] = self.mixing.mix(pixels, batch["label"], len(self.class_names))
        outputs["logits"] = self.classify(self.embed(pixels))
        return outputs

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        cfg: DiSTConfig = self.cfg
        logits = outputs["logits"]
        if "targets" in outputs:
            ce = soft_cross_entropy(logits, outputs["targets"])
        else:
            ce = F.cross_entropy(logits.float(), batch["label"], label_smoothing=cfg.label_smoothing)
        return {"loss": ce, "ce": ce.detach()}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return top_predictions(self(batch)["logits"], self.class_names)

    def param_groups(self) -> list[ParamGroup]:
        """Every trainable DiST parameter at ``lr_mult`` × the schedule; tokens and position embeddings
        without weight decay (the engine also exempts every 1-D parameter); an ``end-to-end`` tower at
        the schedule's lr. No frozen parameter."""
        cfg: DiSTConfig = self.cfg
        tower = [p for p in self.backbone.parameters() if p.requires_grad]
        trainable = [(name, p) for name, p in self.named_parameters()
                     if p.requires_grad and not name.startswith("backbone.")]
        tokens = [p for name, p in trainable if name.rsplit(".", 1)[-1] in TOKEN_PARAMETERS]
        rest = [p for name, p in trainable if name.rsplit(".", 1)[-1] not in TOKEN_PARAMETERS]
        groups = [ParamGroup("dist", rest, lr_scale=cfg.lr_mult)]
        if tokens:
            groups.append(ParamGroup("dist-tokens", tokens, lr_scale=cfg.lr_mult, weight_decay=0.0))
        return groups + ([ParamGroup("tower", tower)] if tower else [])
