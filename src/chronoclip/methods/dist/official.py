"""Loading the released DiST checkpoints (alibaba-mmai-research/DiST, a TAdaConv-codebase ``.pyth``).

A released checkpoint is a ``torch.save`` of ``{"model_state": {key: tensor}, ...}`` (optimizer state,
epoch and config may sit beside it). The branch's keys read ``backbone.base_encoder.dist_net.<module>``;
every other key belongs to the CLIP towers (``...visual.*``, ``...transformer.*``, ``logit_scale``), which
here come from ``--backbone`` and are ignored. Only the part after ``dist_net.`` is matched, so a
``module.`` (DDP) prefix does not matter. ``i`` is the index of a tapped layer (released
``SELECTED_LAYERS[i]``, a 0-based block index ``l``, is our tower layer ``l + 1``), ``p`` a pooling layer.

Released name (after ``dist_net.``) → chronoclip name (after ``branch.``):

- ``temporal_stem.*`` → ``temporal_stem.*``
- ``input_linears.i.*`` → ``layers.i.tap_proj.*``
- ``integration2temporal_nets.i.linear_fuse.*`` → ``layers.i.to_temporal.*``
- ``temporal2integration_nets.i.linear_fuse.*`` → ``layers.i.to_integration.*``
- ``temporal2integration_nets.i.cls_token`` → ``layers.i.frame_cls``
- ``temporal_nets.i.ln.*`` → ``layers.i.temporal_block.norm.*``
- ``temporal_nets.i.temporal_net.c_fc1.*`` / ``c_fc2.*`` → ``layers.i.temporal_block.time_conv.*`` / ``space_conv.*``
- ``integration_nets.i.ln.*`` / ``ln_temporal.*`` → ``layers.i.integration_block.norm.*`` / ``norm_t.*``
- ``integration_nets.i.ffn.c_fc.*`` / ``c_proj.*`` → ``layers.i.integration_block.ffn.fc.*`` / ``ffn.proj.*``
- ``integration_nets.i.temporal_ffn.c_fc1.*`` / ``c_fc2.*`` / ``c_proj.*`` → ``layers.i.integration_block.t_reduce.*`` / ``t_conv.*`` / ``t_expand.*``
- ``adapooling_nets.p.spatial_transformer.ln_1.*`` / ``.attn.*`` → ``pooling.p.frame_attn.norm.*`` / ``.attn.*``
- ``adapooling_nets.p.ln_out_spat_cls_token.*`` → ``pooling.p.frame_norm.*``
- ``adapooling_nets.p.output_map_spatial_cls_token.c_fc.*`` / ``c_proj.*`` → ``pooling.p.frame_mlp.fc.*`` / ``frame_mlp.proj.*``
- ``adapooling_nets.p.positional_embedding`` → ``pooling.p.time_pos``
- ``adapooling_nets.p.temporal_transformer.ln_1.*`` / ``.attn.*`` → ``pooling.p.video_attn.norm.*`` / ``.attn.*``
- ``adapooling_nets.p.ln_out_temp_cls_token.*`` → ``pooling.p.video_norm.*``
- ``adapooling_nets.p.output_map_cls_token.c_fc.*`` / ``c_proj.*`` → ``pooling.p.video_mlp.fc.*`` / ``video_mlp.proj.*``
- ``proj_spatial_cls_token.*`` → ``skip.*``
- ``ln_post.*`` → ``norm_post.*``
- ``proj`` → ``proj``
- ``aggregated_cls_token`` / ``aggregated_spatial_cls_token`` → ``video_query`` / ``frame_query``

Every tensor keeps its released shape (``nn.MultiheadAttention`` in- and out-projections included; the
released sequence-first layout changes no parameter), so loading is renaming plus shape checks. The
per-frame CLS tokens and position embeddings fix ``T`` (released pitfall P9): a checkpoint loads only into
a model with the same ``frames``, tapped-layer count, widths and pooling depth, and the error says which.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from chronoclip.errors import ChronoclipError

#: ``(released pattern after "dist_net.", chronoclip name after "branch.")``; ``{i}`` captures an index.
KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"temporal_stem\.(weight|bias)", r"temporal_stem.\1"),
    (r"input_linears\.(\d+)\.(weight|bias)", r"layers.\1.tap_proj.\2"),
    (r"integration2temporal_nets\.(\d+)\.linear_fuse\.(weight|bias)", r"layers.\1.to_temporal.\2"),
    (r"temporal2integration_nets\.(\d+)\.linear_fuse\.(weight|bias)", r"layers.\1.to_integration.\2"),
    (r"temporal2integration_nets\.(\d+)\.cls_token", r"layers.\1.frame_cls"),
    (r"temporal_nets\.(\d+)\.ln\.(weight|bias)", r"layers.\1.temporal_block.norm.\2"),
    (r"temporal_nets\.(\d+)\.temporal_net\.c_fc1\.(weight|bias)", r"layers.\1.temporal_block.time_conv.\2"),
    (r"temporal_nets\.(\d+)\.temporal_net\.c_fc2\.(weight|bias)", r"layers.\1.temporal_block.space_conv.\2"),
    (r"integration_nets\.(\d+)\.ln\.(weight|bias)", r"layers.\1.integration_block.norm.\2"),
    (r"integration_nets\.(\d+)\.ln_temporal\.(weight|bias)", r"layers.\1.integration_block.norm_t.\2"),
    (r"integration_nets\.(\d+)\.ffn\.c_fc\.(weight|bias)", r"layers.\1.integration_block.ffn.fc.\2"),
    (r"integration_nets\.(\d+)\.ffn\.c_proj\.(weight|bias)", r"layers.\1.integration_block.ffn.proj.\2"),
    (r"integration_nets\.(\d+)\.temporal_ffn\.c_fc1\.(weight|bias)", r"layers.\1.integration_block.t_reduce.\2"),
    (r"integration_nets\.(\d+)\.temporal_ffn\.c_fc2\.(weight|bias)", r"layers.\1.integration_block.t_conv.\2"),
    (r"integration_nets\.(\d+)\.temporal_ffn\.c_proj\.(weight|bias)", r"layers.\1.integration_block.t_expand.\2"),
    (r"adapooling_nets\.(\d+)\.spatial_transformer\.ln_1\.(weight|bias)", r"pooling.\1.frame_attn.norm.\2"),
    (r"adapooling_nets\.(\d+)\.spatial_transformer\.attn\.(.+)", r"pooling.\1.frame_attn.attn.\2"),
    (r"adapooling_nets\.(\d+)\.ln_out_spat_cls_token\.(weight|bias)", r"pooling.\1.frame_norm.\2"),
    (r"adapooling_nets\.(\d+)\.output_map_spatial_cls_token\.c_fc\.(weight|bias)", r"pooling.\1.frame_mlp.fc.\2"),
    (r"adapooling_nets\.(\d+)\.output_map_spatial_cls_token\.c_proj\.(weight|bias)", r"pooling.\1.frame_mlp.proj.\2"),
    (r"adapooling_nets\.(\d+)\.positional_embedding", r"pooling.\1.time_pos"),
    (r"adapooling_nets\.(\d+)\.temporal_transformer\.ln_1\.(weight|bias)", r"pooling.\1.video_attn.norm.\2"),
    (r"adapooling_nets\.(\d+)\.temporal_transformer\.attn\.(.+)", r"pooling.\1.video_attn.attn.\2"),
    (r"adapooling_nets\.(\d+)\.ln_out_temp_cls_token\.(weight|bias)", r"pooling.\1.video_norm.\2"),
    (r"adapooling_nets\.(\d+)\.output_map_cls_token\.c_fc\.(weight|bias)", r"pooling.\1.video_mlp.fc.\2"),
    (r"adapooling_nets\.(\d+)\.output_map_cls_token\.c_proj\.(weight|bias)", r"pooling.\1.video_mlp.proj.\2"),
    (r"proj_spatial_cls_token\.(weight|bias)", r"skip.\1"),
    (r"ln_post\.(weight|bias)", r"norm_post.\1"),
    (r"proj", r"proj"),
    (r"aggregated_cls_token", r"video_query"),
    (r"aggregated_spatial_cls_token", r"frame_query"),
)
_COMPILED = tuple((re.compile(pattern), target) for pattern, target in KEY_MAP)
_MARKER = "dist_net."


def official_to_branch(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released ``model_state`` → the DiST branch's state dict (keys relative to ``branch``).

    Keys without ``dist_net.`` (the CLIP towers) are skipped.

    Raises:
        ChronoclipError: a ``dist_net`` key that no rule maps (a different release), or two keys mapping
            to the same name.
    """
    result: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if _MARKER not in key:
            continue
        suffix = key.split(_MARKER, 1)[1]
        for pattern, target in _COMPILED:
            if pattern.fullmatch(suffix):
                name = pattern.sub(target, suffix)
                if name in result:
                    raise ChronoclipError(f"official checkpoint: two keys map to branch.{name} (again from {key})")
                result[name] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ChronoclipError(f"official checkpoint: {len(unknown)} dist_net keys have no chronoclip counterpart, "
                              f"e.g. {unknown[:3]}; is it a DiST release (an older 'ladder_net' one must first "
                              f"be renamed with the release's process_dist_cpkt.py)?")
    if not result:
        raise ChronoclipError("official checkpoint: no 'dist_net.' keys; this is not a DiST checkpoint")
    return result


def load_official_state(method: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a released ``model_state``'s branch weights into a :class:`~chronoclip.methods.dist.DiST`.

    Raises:
        ChronoclipError: missing or unexpected branch tensors, or a shape that differs (with the
            model settings to change).
    """
    mapped = official_to_branch(state)
    expected = method.branch.state_dict()
    missing, unexpected = sorted(set(expected) - set(mapped)), sorted(set(mapped) - set(expected))
    if missing or unexpected:
        raise ChronoclipError(f"official checkpoint does not fit this DiST model: missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}; match model.layers (count), model.pooling_layers")
    wrong = [f"{name}: checkpoint {tuple(t.shape)} vs model {tuple(expected[name].shape)}"
             for name, t in mapped.items() if t.shape != expected[name].shape]
    if wrong:
        raise ChronoclipError(f"official checkpoint shapes differ ({'; '.join(wrong[:3])}); match model.frames, "
                              f"model.integration_dim, model.temporal_dim and the backbone")
    method.branch.load_state_dict({name: t.to(expected[name].dtype) for name, t in mapped.items()})


def load_official_checkpoint(method: Any, path: str | Path) -> None:
    """Load a released ``.pyth`` (read with ``torch.load(weights_only=True)``, never unpickled) into ``method``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ChronoclipError(f"official DiST checkpoint not found: {path} (model.init_checkpoint)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of every kind
        raise ChronoclipError(f"cannot read {path} as a torch checkpoint of tensors: {exc}") from exc
    state = content.get("model_state", content) if isinstance(content, dict) else None
    if not isinstance(state, Mapping):
        raise ChronoclipError(f"{path}: expected a dict with 'model_state' (a released DiST checkpoint)")
    load_official_state(method, state)
