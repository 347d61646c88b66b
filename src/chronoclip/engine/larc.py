"""LARC (layer-wise adaptive rate clipping, You et al. 2017) as step hooks on any torch optimizer.

Before each step, for every parameter with a gradient whose weight norm and gradient norm are both
non-zero, the group's weight decay is folded into the gradient and the gradient is scaled by the local
rate ``η·‖w‖ / (‖g‖ + wd·‖w‖ + eps)``, divided by the group's lr and clipped at 1 in clip mode (so the
effective lr is ``min(lr, local)``), or used as is in scale mode. The wrapped optimizer then steps with
weight decay 0, and the groups' weight decay is restored afterwards, so schedules, checkpoints and
``state_dict`` see the optimizer unchanged. CrissCross wraps Adam this way (trust 1e-3, clip mode).

Being hooks rather than a wrapper class, LARC survives ``accelerate``'s optimizer wrapping and adds no
state of its own.

- [0] You, Gitman, Ginsburg 2017, https://arxiv.org/abs/1708.03888
"""

from __future__ import annotations

from typing import Any

import torch

from chronoclip.errors import ConfigError

_STASH = "larc_weight_decay"


@torch.no_grad()
def larc_scale_(optimizer: torch.optim.Optimizer, trust: float, clip: bool, eps: float = 1e-8) -> None:
    """Rescale the gradients in place and zero the groups' weight decay (stashed for :func:`larc_restore_`)."""
    for group in optimizer.param_groups:
        decay, lr = float(group.get("weight_decay", 0.0)), float(group["lr"])
        for param in group["params"]:
            if param.grad is None:
                continue
            weight_norm, grad_norm = param.norm(), param.grad.norm()
            if weight_norm == 0 or grad_norm == 0:
                continue
            local = trust * weight_norm / (grad_norm + weight_norm * decay + eps)
            if clip:
                local = torch.clamp(local / lr, max=1.0) if lr > 0 else torch.ones_like(local)
            param.grad.add_(param, alpha=decay).mul_(local)
        group[_STASH] = decay
        if "weight_decay" in group:
            group["weight_decay"] = 0.0


def larc_restore_(optimizer: torch.optim.Optimizer) -> None:
    """Put back the weight decay :func:`larc_scale_` zeroed."""
    for group in optimizer.param_groups:
        if _STASH in group:
            if "weight_decay" in group:
                group["weight_decay"] = group[_STASH]
            del group[_STASH]


def apply_larc(optimizer: torch.optim.Optimizer, trust: float = 1e-3, clip: bool = True,
               eps: float = 1e-8) -> torch.optim.Optimizer:
    """Make every later ``optimizer.step()`` a LARC step; returns the same optimizer.

    Raises:
        ConfigError: ``trust`` or ``eps`` not positive.
    """
    if trust <= 0 or eps <= 0:
        raise ConfigError(f"optim.larc_trust={trust} and eps={eps} must be positive")

    def before(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        larc_scale_(opt, trust, clip, eps)

    def after(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        larc_restore_(opt)

    optimizer.register_step_pre_hook(before)
    optimizer.register_step_post_hook(after)
    return optimizer
