"""The temporal embedding of ``cliptime`` (spec C.3, [ours]): Fourier features of normalised time τ,
an MLP to the fused width, and a soft-target InfoNCE that aligns each sample's fused representation
with the embedding of its own time. It is used at training time only (no time input at test); at test
the time can also be read out by retrieval: the grid point whose embedding is nearest.

Example:
    >>> import torch
    >>> targets = soft_time_targets(torch.tensor([0.0, 0.5, 1.0]), sigma=0.05)
    >>> bool(torch.allclose(targets.sum(dim=1), torch.ones(3)))
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def fourier_features(tau: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``γ(τ) = [sin 2πkτ, cos 2πkτ]_{k=1..K}``: ``[N]`` → ``[N, 2K]``."""
    k = torch.arange(1, frequencies + 1, device=tau.device, dtype=torch.float32)
    angles = 2 * math.pi * tau.float()[:, None] * k
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def soft_time_targets(tau: torch.Tensor, sigma: float) -> torch.Tensor:
    """Row-stochastic soft targets ``q_ij ∝ exp(−|τ_i − τ_j| / σ)`` ``[B, B]``; each row peaks on the diagonal."""
    return torch.softmax(-(tau[:, None] - tau[None, :]).abs() / sigma, dim=1)


def soft_alignment_loss(queries: torch.Tensor, keys: torch.Tensor, tau: torch.Tensor, sigma: float,
                        temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets between fused queries and time embeddings.

    Args:
        queries: ``[B, D]`` L2-normalised projections of the fused representations.
        keys: ``[B, D]`` L2-normalised time embeddings e_τ of the same rows' times.
        tau: ``[B]`` normalised times (the targets' source).
        sigma: soft-target width.
        temperature: divides the cosine similarities.
    """
    logits = queries @ keys.T / temperature
    targets = soft_time_targets(tau, sigma)  # symmetric, so it is the target of both directions
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class TimeEmbedding(nn.Module):
    """``τ [N]`` → L2-normalised ``e_τ [N, D]``: Fourier features, then Linear → GELU → Linear."""

    def __init__(self, frequencies: int, dim: int) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(fourier_features(tau, self.frequencies)), dim=-1)

    def retrieve(self, queries: torch.Tensor, points: int) -> torch.Tensor:
        """``τ̂_ret [N]``: the point of a ``points``-point grid on [0, 1] whose embedding best matches each
        L2-normalised query ``[N, D]`` (cosine similarity)."""
        grid = torch.linspace(0, 1, points, device=queries.device)
        return grid[(queries @ self(grid).T).argmax(dim=1)]
