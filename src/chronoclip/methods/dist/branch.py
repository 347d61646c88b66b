"""The trainable part of DiST: temporal encoder, integration branch, query pooling (spec A.2).

Notation (shapes batch-first; the released code is sequence-first, which changes no parameter):
``B`` clips, ``T`` sparse frames (the image tower's), ``α`` the temporal ratio, ``αT`` dense frames,
``N = g²`` patches, ``D`` the tower's width, ``I`` the integration width, ``C`` the temporal width.

- Temporal encoder: a 3-D conv stem on the dense raw frames, then one :class:`TemporalBlock` per tapped
  layer: ``Z [B, C, αT, g, g]``.
- Integration branch, per tapped layer ``l`` (:class:`ExchangeLayer`): ``M = W_l X^(l) + R``;
  integration→temporal ``Z' = Z + up_α(W_it M_patches)``; temporal→integration
  ``U = M + [cls_t ; conv_(α,1,1)/α(Z)]`` from the *pre-exchange* ``Z``; ``R = IBlock(U)``; ``Z ← Z'``.
- Fused tokens ``F = R + U`` of the last layer, pooled by :class:`QueryPooling` layers (a per-frame query
  attends to the frame's tokens, a video query attends to the per-frame queries + a temporal position
  embedding) into ``v [B, I]``; ``e = LN(v + W_s mean_t CLS^(L)) P`` (:class:`DiSTBranch`).

The last layer's integration→temporal map is dead in the released design (its ``Z'`` is never read); it
is kept (released checkpoints have it) but frozen and not run.

Initialisation follows the released code: conv / linear weights trunc-normal(0.02) with zero biases,
attention in-projections PyTorch's default, LayerNorms (1, 0), ``P ~ N(0, 1/I)``, queries, per-frame CLS
tokens and position embeddings trunc-normal(0.02). Nothing is zero-initialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class _QuickGELUFunction(torch.autograd.Function):
    """``x · σ(1.702 x)`` that keeps only ``x`` for backward and recomputes the sigmoid there: autograd's
    composite keeps ``x`` and ``σ(1.702 x)``, so this keeps 15 % less of the branch's activations
    (ViT-B/16 K400 branch, batch 2: 852 → 727 MiB saved for backward)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(1.702 * x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        gate = torch.sigmoid(1.702 * x)
        return grad * gate * (1 + 1.702 * x * (1 - gate))


#: Activation checkpointing of the branch (``DiSTConfig.checkpoint_branch``): ``none``; ``integration``
#: reruns each I-block in backward (most of the branch's activations, a small share of its compute);
#: ``layers`` reruns whole exchange layers (least memory; one more forward of the branch).
RECOMPUTE = ("none", "integration", "layers")


class QuickGELU(nn.Module):
    """CLIP's activation ``x · σ(1.702 x)`` (memory-lean backward, same values and gradients)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, _QuickGELUFunction.apply(x))


@dataclass(frozen=True)
class BranchShape:
    """Sizes of a DiST branch.

    Attributes:
        tower_width: ``D``. grid: ``g`` (patches per side). frames: ``T`` sparse frames. ratio: ``α``.
        layers: tapped layers (one exchange layer each). integration: ``I``. temporal: ``C``.
        embed_dim: ``E``, the output width (the text embedding's for the cosine head).
        pooling_layers, pooling_heads: query-pooling depth and attention heads.
        temporal_kernel: temporal kernel of the T-blocks and the integration blocks' temporal FFN.
        stem_kernel: temporal kernel of the temporal stem (spatial kernel = the tower's patch size).
        patch_size: the tower's patch size (the stem's spatial kernel and stride).
        integration_mlp_ratio, integration_temporal_ratio, temporal_mlp_ratio: hidden widths of the
            integration FFN, its temporal FFN, and the T-blocks, as multiples of ``I`` / ``I`` / ``C``.
    """

    tower_width: int
    grid: int
    patch_size: int
    frames: int
    ratio: int
    layers: int
    integration: int
    temporal: int
    embed_dim: int
    pooling_layers: int
    pooling_heads: int
    temporal_kernel: int = 3
    stem_kernel: int = 5
    integration_mlp_ratio: float = 1.0
    integration_temporal_ratio: float = 0.25
    temporal_mlp_ratio: float = 1.0


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv3d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Mlp(nn.Module):
    """``proj(QuickGELU(fc(x)))``: width → hidden → width."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.act = QuickGELU()
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class TemporalBlock(nn.Module):
    """``Z ← QuickGELU(Z + g(LN_C(Z)))`` with ``g`` = conv (k,1,1) → QuickGELU → conv (1,3,3); ``[B,C,αT,g,g]``."""

    def __init__(self, width: int, kernel: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm = nn.LayerNorm(width)
        self.time_conv = nn.Conv3d(width, hidden, (kernel, 1, 1), padding=(kernel // 2, 0, 0))
        self.act = QuickGELU()
        self.space_conv = nn.Conv3d(hidden, width, (1, 3, 3), padding=(0, 1, 1))
        self.out_act = QuickGELU()  # after the residual add, as released

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        normed = self.norm(z.movedim(1, -1)).movedim(-1, 1)
        return self.out_act(z + self.space_conv(self.act(self.time_conv(normed))))


class IntegrationBlock(nn.Module):
    """``R = FFN(LN(U)) + TFFN(LN_t(U))`` on ``U [B·T, 1+N, I]``; no identity path (spec A.2).

    TFFN treats every token position as its own time series over the ``T`` frames: 1×1×1 conv ``I→rI``,
    temporal conv (k,1,1), QuickGELU, 1×1×1 conv ``rI→I``.
    """

    def __init__(self, width: int, frames: int, kernel: int, mlp_ratio: float, temporal_ratio: float) -> None:
        super().__init__()
        self.frames = frames
        self.norm = nn.LayerNorm(width)
        self.ffn = Mlp(width, int(width * mlp_ratio))
        hidden = int(width * temporal_ratio)
        self.norm_t = nn.LayerNorm(width)
        self.t_reduce = nn.Conv3d(width, hidden, 1)
        self.t_conv = nn.Conv3d(hidden, hidden, (kernel, 1, 1), padding=(kernel // 2, 0, 0))
        self.t_act = QuickGELU()
        self.t_expand = nn.Conv3d(hidden, width, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        rows, tokens, width = u.shape
        series = self.norm_t(u).view(rows // self.frames, self.frames, tokens, width)
        series = series.permute(0, 3, 1, 2).unsqueeze(-1)                      # [B, I, T, 1+N, 1]
        temporal = self.t_expand(self.t_act(self.t_conv(self.t_reduce(series))))
        temporal = temporal.squeeze(-1).permute(0, 2, 3, 1).reshape(rows, tokens, width)
        return self.ffn(self.norm(u)) + temporal


class ExchangeLayer(nn.Module):
    """One tapped layer: T-block, the tap's projection, both exchange maps and the I-block."""

    def __init__(self, shape: BranchShape) -> None:
        super().__init__()
        self.shape = shape
        width, temporal = shape.integration, shape.temporal
        self.temporal_block = TemporalBlock(temporal, shape.temporal_kernel, shape.temporal_mlp_ratio)
        self.tap_proj = nn.Linear(shape.tower_width, width)
        self.to_temporal = nn.Linear(width, temporal)
        self.to_integration = nn.Conv3d(temporal, width, (shape.ratio, 1, 1), stride=(shape.ratio, 1, 1))
        #: the per-frame CLS token of the temporal→integration map, ``[1, 1, T, I]`` (the released shape)
        self.frame_cls = nn.Parameter(torch.zeros(1, 1, shape.frames, width))
        self.integration_block = IntegrationBlock(width, shape.frames, shape.temporal_kernel,
                                                  shape.integration_mlp_ratio, shape.integration_temporal_ratio)

    def integration_to_temporal(self, m: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B·T, 1+N, I]`` → ``[B, C, αT, g, g]``: sparse slot ``k`` goes to dense frames
        ``αk … αk+α-1`` (nearest upsampling in time)."""
        s = self.shape
        patches = self.to_temporal(m[:, 1:])                                      # [B·T, N, C]
        grid = patches.view(-1, s.frames, s.grid, s.grid, s.temporal).permute(0, 4, 1, 2, 3)
        return grid.repeat_interleave(s.ratio, dim=2)

    def temporal_to_integration(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, C, αT, g, g]`` → tokens ``[B·T, 1+N, I]``: dense frames ``αk … αk+α-1`` → sparse slot ``k``
        (a (α,1,1)-stride-α conv), with the per-frame CLS token prepended."""
        s = self.shape
        fused = self.to_integration(z)                                            # [B, I, T, g, g]
        batch = fused.shape[0]
        tokens = fused.flatten(3).permute(0, 2, 3, 1).reshape(batch * s.frames, s.grid * s.grid, -1)
        cls = self.frame_cls[0, 0].expand(batch, -1, -1).reshape(batch * s.frames, 1, -1)
        return torch.cat([cls, tokens], dim=1)

    def forward(self, tap: torch.Tensor, residual: torch.Tensor | float, z: torch.Tensor, last: bool = False,
                recompute_integration: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One layer. Returns ``(R, U, Z')``: the new state ``R``, the block input ``U`` and the updated ``Z``
        (the ``last`` layer's ``Z'`` would be discarded, so it is not computed and ``Z`` is returned).
        ``recompute_integration`` keeps only ``U`` of the I-block for backward and reruns the block there."""
        z = self.temporal_block(z)
        m = self.tap_proj(tap) + residual
        z_next = z if last else z + self.integration_to_temporal(m)
        u = m + self.temporal_to_integration(z)
        if recompute_integration:
            return checkpoint(self.integration_block, u, use_reentrant=False), u, z_next
        return self.integration_block(u), u, z_next


class CrossAttention(nn.Module):
    """``MHA(LN(q), LN(kv), LN(kv))``, one LayerNorm shared by queries, keys and values."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        keys = self.norm(keys)
        return self.attn(self.norm(query), keys, keys, need_weights=False)[0]


class QueryPooling(nn.Module):
    """One pooling layer: (i) per-frame queries ``s [B·T, 1, I]`` attend to their frame's fused tokens
    ``F [B·T, 1+N, I]``, + MLP; (ii) the video query ``v [B, 1, I]`` attends to the per-frame queries plus a
    temporal position embedding, + MLP. Both accumulate (residual); the keys stay ``F``."""

    def __init__(self, width: int, frames: int, heads: int) -> None:
        super().__init__()
        self.frames = frames
        self.frame_attn = CrossAttention(width, heads)
        self.frame_norm = nn.LayerNorm(width)
        self.frame_mlp = Mlp(width, 4 * width)
        self.time_pos = nn.Parameter(torch.zeros(1, frames, width))
        self.video_attn = CrossAttention(width, heads)
        self.video_norm = nn.LayerNorm(width)
        self.video_mlp = Mlp(width, 4 * width)

    def forward(self, fused: torch.Tensor, frame_query: torch.Tensor, video_query: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        frame_query = frame_query + self.frame_attn(frame_query, fused)
        frame_query = frame_query + self.frame_mlp(self.frame_norm(frame_query))
        per_frame = frame_query.view(-1, self.frames, frame_query.shape[-1]) + self.time_pos   # [B, T, I]
        video_query = video_query + self.video_attn(video_query, per_frame)
        video_query = video_query + self.video_mlp(self.video_norm(video_query))
        return frame_query, video_query


class DiSTBranch(nn.Module):
    """Taps ``[L'] × [B·T, 1+N, D]``, the last block's CLS ``[B·T, D]`` and dense frames ``[B, αT, 3, H, W]``
    → video embedding ``e [B, E]`` (see the module docstring)."""

    def __init__(self, shape: BranchShape, recompute: str = "none") -> None:
        super().__init__()
        if recompute not in RECOMPUTE:
            raise ValueError(f"recompute={recompute!r}: expected one of {', '.join(RECOMPUTE)}")
        self.shape = shape
        self.recompute = recompute
        width = shape.integration
        self.temporal_stem = nn.Conv3d(3, shape.temporal, (shape.stem_kernel, shape.patch_size, shape.patch_size),
                                       stride=(1, shape.patch_size, shape.patch_size),
                                       padding=(shape.stem_kernel // 2, 0, 0))
        self.layers = nn.ModuleList(ExchangeLayer(shape) for _ in range(shape.layers))
        self.pooling = nn.ModuleList(QueryPooling(width, shape.frames, shape.pooling_heads)
                                     for _ in range(shape.pooling_layers))
        self.frame_query = nn.Parameter(torch.zeros(1, 1, width))
        self.video_query = nn.Parameter(torch.zeros(1, 1, width))
        self.skip = nn.Linear(shape.tower_width, width)
        self.norm_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, shape.embed_dim) * width ** -0.5)
        self.apply(_init_weights)
        # The last layer's integration→temporal map feeds a Z nothing reads (as released): kept so released
        # checkpoints load key for key, frozen so no optimizer or DDP holds a parameter without gradient.
        self.exchange_layers()[-1].to_temporal.requires_grad_(False)
        for name, param in self.named_parameters():
            if name.endswith(("frame_cls", "time_pos", "frame_query", "video_query")):
                nn.init.trunc_normal_(param, std=0.02)

    def exchange_layers(self) -> list[ExchangeLayer]:
        """The per-layer modules, typed."""
        return [cast(ExchangeLayer, layer) for layer in self.layers]

    def pooling_layers(self) -> list[QueryPooling]:
        """The pooling layers, typed."""
        return [cast(QueryPooling, pool) for pool in self.pooling]

    def temporal_stream(self, dense: torch.Tensor) -> torch.Tensor:
        """Dense frames ``[B, αT, 3, H, W]`` → ``Z [B, C, αT, g, g]`` (time kept, space patched)."""
        return self.temporal_stem(dense.transpose(1, 2))

    def forward(self, taps: list[torch.Tensor], last_cls: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        s = self.shape
        if len(taps) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} tapped layers, got {len(taps)}")
        z = self.temporal_stream(dense)
        residual: torch.Tensor | float = 0.0
        u = taps[0]
        recompute = self.recompute if torch.is_grad_enabled() else "none"
        for index, (layer, tap) in enumerate(zip(self.exchange_layers(), taps, strict=True)):
            last = index == len(self.layers) - 1
            if recompute == "layers":
                residual, u, z = checkpoint(layer, tap, residual, z, last, False, use_reentrant=False)
            else:
                residual, u, z = layer(tap, residual, z, last, recompute == "integration")
        fused = residual + u                                                   # [B·T, 1+N, I]
        rows = fused.shape[0]
        frame_query = self.frame_query.expand(rows, -1, -1)
        video_query = self.video_query.expand(rows // s.frames, -1, -1)
        for pool in self.pooling:
            frame_query, video_query = pool(fused, frame_query, video_query)
        return self.output(video_query[:, 0], last_cls)

    def output(self, video: torch.Tensor | float, last_cls: torch.Tensor) -> torch.Tensor:
        """``e = LN(v + W_s mean_t CLS^(L)) P`` ``[B, E]`` from the video query ``v [B, I]`` and the last
        block's CLS tokens ``[B·T, D]``; ``v = 0`` is the spatial-only reduction (spec A.8-6)."""
        frames = self.shape.frames
        skip = self.skip(last_cls.view(-1, frames, last_cls.shape[-1]).mean(dim=1))   # [B, I]
        return self.norm_post(video + skip) @ self.proj
