"""Batch-level mixup / cutmix with label smoothing, on clips as on images (timm's recipe, in our words).

One draw per batch (``mode: batch``): with probability ``prob`` the batch is mixed with its own reverse
order (sample ``i`` with sample ``B-1-i``); when both mixup and cutmix are enabled, cutmix is chosen with
probability ``switch_prob``. Mixup blends whole samples with ``λ ~ Beta(α, α)``; cutmix pastes one box,
the same box in every frame of a clip, whose area is ``1-λ`` of the frame (``λ ~ Beta(α, α)``), and ``λ`` is
then corrected to the box actually pasted (it is clipped at the borders). Targets are one-hot labels
smoothed to ``1-ε+ε/K`` / ``ε/K`` and mixed with the same ``λ``.

Randomness comes from the global torch RNG, which the trainer saves in checkpoints (exact resume).

- [0] Zhang et al., mixup: Beyond Empirical Risk Minimization, 2018, https://arxiv.org/abs/1710.09412
- [1] Yun et al., CutMix, 2019, https://arxiv.org/abs/1905.04899

Example:
    >>> import torch
    >>> pixels, labels = torch.zeros(4, 8, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    >>> mixed, targets = MixConfig(mixup_alpha=0.8).mix(pixels, labels, num_classes=5)
    >>> mixed.shape, targets.shape, bool(torch.allclose(targets.sum(-1), torch.ones(4)))
    (torch.Size([4, 8, 3, 16, 16]), torch.Size([4, 5]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """``[B]`` class indices → ``[B, K]`` targets ``1-ε+ε/K`` on the label, ``ε/K`` elsewhere."""
    if labels.dim() != 1 or (labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes)):
        raise ValueError(f"labels must be [B] class indices in [0, {num_classes - 1}], got {tuple(labels.shape)}")
    off = smoothing / num_classes
    return F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + off


def _beta(alpha: float) -> float:
    return float(torch.distributions.Beta(alpha, alpha).sample())


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box of area ``≈ (1-λ)·H·W`` centred at a uniform random point,
    clipped to the frame."""
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    return top, bottom, left, right


@dataclass(frozen=True)
class MixConfig:
    """Mixup / cutmix settings (``alpha = 0`` disables that kind).

    Attributes:
        mixup_alpha: Beta parameter of mixup (0.8 in DiST).
        cutmix_alpha: Beta parameter of cutmix (1.0 in DiST).
        prob: probability that a batch is mixed at all.
        switch_prob: probability of cutmix rather than mixup when both are enabled.
        smoothing: label smoothing ε of the targets.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0")
        if not (0 <= self.prob <= 1 and 0 <= self.switch_prob <= 1 and 0 <= self.smoothing < 1):
            raise ValueError("prob and switch_prob must lie in [0, 1], smoothing in [0, 1)")

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def mix(self, pixels: torch.Tensor, labels: torch.Tensor, num_classes: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch.

        Args:
            pixels: ``[B, ..., H, W]`` (images ``[B,3,H,W]`` or clips ``[B,T,3,H,W]``).
            labels: ``[B]`` class indices.

        Returns:
            The mixed pixels (a new tensor; the input is not modified) and ``[B, K]`` soft targets.
        """
        if pixels.shape[0] != labels.shape[0]:
            raise ValueError(f"pixels {tuple(pixels.shape)} and labels {tuple(labels.shape)} differ in batch size")
        targets = smooth_one_hot(labels, num_classes, self.smoothing)
        if not self.enabled or float(torch.rand(())) >= self.prob:
            return pixels, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or float(torch.rand(())) < self.switch_prob)
        flipped = pixels.flip(0)
        if use_cutmix:
            height, width = pixels.shape[-2:]
            top, bottom, left, right = cutmix_box(height, width, _beta(self.cutmix_alpha))
            mixed = pixels.clone()
            mixed[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        else:
            lam = _beta(self.mixup_alpha)
            mixed = pixels * lam + flipped * (1.0 - lam)
        return mixed, targets * lam + targets.flip(0) * (1.0 - lam)
