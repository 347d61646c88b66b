"""Symmetric InfoNCE between two batches of paired embeddings (CLIP's loss), shared by ``clip``, TVTS and TRUST.

Under DDP each process sees its own batch; the negatives of a pair should be the whole global batch, so
the embeddings are gathered from every process with gradients kept (``torch.distributed.nn.all_gather``)
and each process computes the loss of its own rows against all columns. With one process this is
exactly the single-batch loss.

- [0] Radford et al., Learning Transferable Visual Models From Natural Language Supervision, 2021,
  https://arxiv.org/abs/2103.00020 (§2.3, Figure 3).

Example:
    >>> import torch
    >>> image, text = torch.eye(4), torch.eye(4)
    >>> round(float(symmetric_info_nce(image, text, torch.tensor(100.0))), 4)
    0.0
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(embeddings: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All processes' ``embeddings [B, D]`` concatenated ``[world * B, D]`` (gradients flow back to each
    process's own rows), and this process's row offset in the result. Without DDP: the input and 0."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, 0
    from torch.distributed.nn.functional import all_gather

    gathered = all_gather(embeddings.contiguous())
    return torch.cat(gathered), dist.get_rank() * embeddings.shape[0]


def symmetric_info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of the image→text and text→image cross-entropies over scaled cosine similarities.

    Args:
        image: ``[B, D]`` embeddings (normalised here); row ``i`` pairs with ``text`` row ``i``.
        text: ``[B, D]`` embeddings.
        logit_scale: the multiplier (``exp`` of CLIP's learnable log-temperature, already clamped).

    Returns:
        A scalar; with DDP, this process's share of the loss over the global batch.
    """
    if image.shape != text.shape or image.dim() != 2:
        raise ValueError(f"image and text embeddings must both be [B, D]; got {tuple(image.shape)} and "
                         f"{tuple(text.shape)}")
    image, text = F.normalize(image.float(), dim=-1), F.normalize(text.float(), dim=-1)
    all_image, offset = gather_with_grad(image)
    all_text, _ = gather_with_grad(text)
    targets = torch.arange(image.shape[0], device=image.device) + offset
    image_to_text = logit_scale * image @ all_text.T
    text_to_image = logit_scale * text @ all_image.T
    return (F.cross_entropy(image_to_text, targets) + F.cross_entropy(text_to_image, targets)) / 2
