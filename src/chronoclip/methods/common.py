"""Pieces several methods share (methods never import one another)."""

from __future__ import annotations

from typing import Any

import torch


def top_predictions(logits: torch.Tensor, class_names: list[str], k: int = 3) -> list[dict[str, Any]]:
    """One prediction per row of ``logits [B, C]``: the top label and the top-``k`` softmax probabilities."""
    probabilities = logits.softmax(dim=-1)
    top = probabilities.topk(min(k, len(class_names)), dim=-1)
    return [{"label": class_names[int(i[0])],
             "top": [{"label": class_names[int(c)], "probability": round(float(p), 4)}
                     for p, c in zip(ps, i, strict=True)]}
            for ps, i in zip(top.values, top.indices, strict=True)]
