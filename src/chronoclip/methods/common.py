"""Pieces several methods share (a method never imports another method).

- :func:`frame_embeddings` — the frozen image tower's per-frame embeddings, the cacheable extractor of
  ``frame-probe``, ``chronoclip extract`` and ``cliptime`` (one definition, so they share cache entries).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from chronoclip.methods.base import FrozenFeatures


def frame_embeddings(backbone: Any) -> FrozenFeatures:
    """L2-normalised per-frame image embeddings ``[B,T,3,H,W] -> [B,T,D]`` of a frozen tower (a still
    image is a one-frame clip, T = 1)."""
    @torch.no_grad()
    def extract(pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(backbone.encode_video_frames(pixels), dim=-1)
    return FrozenFeatures("frame_embeddings", extract, {"backbone": backbone.fingerprint(), "normalised": True})
