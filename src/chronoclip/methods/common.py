"""Pieces several methods share (a method never imports another method).

- :func:`frame_embeddings` — the frozen image tower's per-frame embeddings, the cacheable extractor of
  ``frame-probe``, ``chronoclip extract`` and ``cliptime`` (one definition, so they share cache entries);
- :func:`top_predictions` — the top label and top-k probabilities of a classifier's logits.
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


def top_predictions(logits: torch.Tensor, class_names: list[str], k: int = 3) -> list[dict[str, Any]]:
    """One prediction per row of ``logits [B, C]``: the top label and the top-``k`` softmax probabilities."""
    probabilities = logits.softmax(dim=-1)
    top = probabilities.topk(min(k, len(class_names)), dim=-1)
    return [{"label": class_names[int(i[0])],
             "top": [{"label": class_names[int(c)], "probability": round(float(p), 4)}
                     for p, c in zip(ps, i, strict=True)]}
            for ps, i in zip(top.values, top.indices, strict=True)]
