"""Optimizers from a method's parameter groups, and per-iteration learning-rate schedules.

Each :class:`~chronoclip.methods.base.ParamGroup` becomes up to two torch groups: its weight
matrices with weight decay and its 1-D parameters (biases, norm scales, embeddings of shape [D])
without. A group's ``lr_scale`` multiplies the base lr; a ``fixed_lr`` group ignores the schedule
(SimSiam's predictor). The schedule is stepped every optimizer step, warm-up included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from chronoclip.config import OptimConfig, ScheduleConfig
from chronoclip.engine.larc import apply_larc
from chronoclip.errors import ConfigError
from chronoclip.methods.base import ParamGroup


def torch_param_groups(groups: Sequence[ParamGroup], cfg: OptimConfig) -> list[dict[str, object]]:
    """Torch optimizer groups (decay / no-decay split) carrying ``name``, ``lr_scale`` and ``fixed_lr``.

    Raises:
        ConfigError: a parameter in two groups, a frozen parameter in a group, or no parameters at all.
    """
    seen: set[int] = set()
    result: list[dict[str, object]] = []
    for group in groups:
        for param in group.params:
            if not param.requires_grad:
                raise ConfigError(f"parameter group '{group.name}' holds a frozen parameter")
            if id(param) in seen:
                raise ConfigError(f"a parameter is in more than one group (again in '{group.name}')")
            seen.add(id(param))
        decay = cfg.weight_decay if group.weight_decay is None else group.weight_decay
        split = {"decay": [p for p in group.params if p.ndim > 1], "no_decay": [p for p in group.params if p.ndim <= 1]}
        for kind, params in split.items():
            if params:
                result.append({"params": params, "name": f"{group.name}/{kind}", "lr": cfg.lr * group.lr_scale,
                               "weight_decay": decay if kind == "decay" else 0.0,
                               "lr_scale": group.lr_scale, "fixed_lr": group.fixed_lr})
    if not result:
        raise ConfigError("the method has no trainable parameters")
    return result


def build_optimizer(groups: Sequence[ParamGroup], cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (with momentum) over the method's groups, LARC-wrapped with ``optim.larc``."""
    torch_groups = torch_param_groups(groups, cfg)
    optimizer: torch.optim.Optimizer
    if cfg.name == "adamw":
        optimizer = torch.optim.AdamW(torch_groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)  # type: ignore[arg-type]
    elif cfg.name == "adam":
        optimizer = torch.optim.Adam(torch_groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)  # type: ignore[arg-type]
    elif cfg.name == "sgd":
        optimizer = torch.optim.SGD(torch_groups, lr=cfg.lr, momentum=cfg.momentum)
    else:
        raise ConfigError(f"optim.name='{cfg.name}' is not one of adamw, adam, sgd")
    return apply_larc(optimizer, cfg.larc_trust, cfg.larc_clip) if cfg.larc else optimizer


def lr_factor(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """The schedule as a function of the optimizer step (0-based) → multiplier of the base lr."""
    warmup = round(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.name == "constant":
            return 1.0
        if cfg.name == "step":
            epoch = step / max(steps_per_epoch, 1)
            return float(cfg.gamma ** sum(epoch >= m for m in cfg.milestones))
        progress = (step - warmup) / max(total_steps - warmup, 1)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int,
                    total_steps: int) -> LambdaLR:
    """A per-step scheduler; groups marked ``fixed_lr`` keep their lr."""
    scheduled = lr_factor(cfg, steps_per_epoch, total_steps)
    lambdas = [(lambda _step: 1.0) if group.get("fixed_lr") else scheduled for group in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)
