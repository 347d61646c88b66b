"""Typed run configuration: OmegaConf structured configs, YAML presets and ``key=value`` overrides.

A run's configuration is one :class:`RunConfig`: the engine's sections (``train``, ``optim``,
``schedule``) and the method's own section ``model`` (its ``Config`` dataclass). Values are merged
in this order: dataclass defaults < preset YAML (``--config``) < ``key=value`` overrides; every
value is type-checked and unknown keys are errors that name the key and list the known ones.

Example:
    >>> cfg = build_run_config("frame-probe", overrides=["train.epochs=2", "optim.lr=0.01"])  # doctest: +SKIP
    >>> cfg.train.epochs                                                                        # doctest: +SKIP
    2
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chronoclip.errors import ConfigError

#: The backbone commands and runs use unless told otherwise: ``tiny-world``, the shipped pretrained small CLIP.
DEFAULT_BACKBONE = "tiny-world"

PRECISIONS = ("no", "bf16", "fp16")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")
#: Top-level keys of a :class:`RunConfig`; an override key starting with anything else is a method key.
ENGINE_KEYS = ("method", "backbone", "data", "train", "optim", "schedule", "io", "model")
#: Engine keys that hold one value: ``data.x`` can only be a method's own ``data`` section.
ENGINE_SCALARS = ("method", "backbone", "data")


@dataclass
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: passes over the training split.
        batch_size: global batch per optimizer step (split across processes, times ``grad_accum``).
        grad_accum: micro-batches accumulated per optimizer step.
        max_steps: stop after this many optimizer steps (0 = no limit); for smoke runs.
        clip_grad: max gradient norm (0 = off).
        precision: ``no`` (fp32), ``bf16`` or ``fp16`` mixed precision (where the device supports it).
        seed: seeds model init, sampling, augmentation and dropout; a run is a function of it.
        num_workers: DataLoader worker processes (0 = load in the main process).
        device: ``auto`` (CUDA when available) or ``cpu``.
        log_every: optimizer steps between progress log lines.
        eval_every: epochs between validation passes (0 = only at the end).
        checkpoint_every: optimizer steps between checkpoints (0 = once per epoch).
        keep_last: checkpoints kept (the best one is always kept in addition).
        best_metric: validation metric that selects the best checkpoint (empty = the method's default).
        cache: use the frozen-feature cache when the method has a frozen extractor and the samples are
            the same every epoch (``false`` never does).
        cache_dir: the feature cache folder (empty: ``$CHRONOCLIP_CACHE`` or ``~/.cache/chronoclip/features``).
    """

    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    max_steps: int = 0
    clip_grad: float = 1.0
    precision: str = "no"
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    log_every: int = 10
    eval_every: int = 1
    checkpoint_every: int = 0
    keep_last: int = 2
    best_metric: str = ""
    cache: bool = True
    cache_dir: str = ""


@dataclass
class OptimConfig:
    """The optimizer. Methods scale ``lr`` per parameter group (e.g. a 0.1× backbone group).

    Attributes:
        name: ``adamw``, ``adam`` or ``sgd``.
        lr: base learning rate.
        weight_decay: applied to weight matrices; 1-D parameters (biases, norms) get none.
        betas: Adam betas.
        eps: Adam epsilon.
        momentum: SGD momentum.
        larc: wrap the optimizer in LARC (layer-wise adaptive rate clipping; CrissCross's Adam + LARC):
            weight decay moves into the gradient and each tensor's gradient is scaled by
            ``min(trust · ‖w‖ / (‖g‖ + wd · ‖w‖ + eps) / lr, 1)`` (see :mod:`chronoclip.engine.larc`).
        larc_trust: LARC's trust coefficient.
        larc_clip: clip mode (the local lr never exceeds the global one); off: scale mode.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    larc: bool = False
    larc_trust: float = 1e-3
    larc_clip: bool = True


@dataclass
class ScheduleConfig:
    """The learning-rate schedule, stepped every optimizer step.

    Attributes:
        name: ``cosine`` (to ``min_lr_ratio`` × lr), ``step`` (× ``gamma`` at each milestone epoch) or
            ``constant``.
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        min_lr_ratio: final lr / base lr for cosine.
        milestones: epochs at which ``step`` multiplies the lr by ``gamma``.
        gamma: the step factor.
    """

    name: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class IOConfig:
    """How media files are decoded.

    Attributes:
        autorotate: videos come out as displayed — the stream's display matrix (phone rotation, mirrors)
            and a non-square sample aspect ratio applied, as players do (:mod:`chronoclip.io.orientation`);
            ``false`` keeps the stored frames, for users who rotate themselves. Images always follow
            their EXIF orientation.
    """

    autorotate: bool = True


@dataclass
class RunConfig:
    """Everything a run is a function of (together with the data and the backbone weights)."""

    method: str = ""
    backbone: str = DEFAULT_BACKBONE
    data: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    io: IOConfig = field(default_factory=IOConfig)
    model: Any = None


def require_at_least(values: dict[str, float], minimum: float = 1) -> None:
    """Raise a ConfigError naming the first key (e.g. ``model.frames``) whose value is below ``minimum``."""
    for key, value in values.items():
        if value < minimum:
            raise ConfigError(f"{key}={value} must be at least {minimum}")


def require_one_of(values: dict[str, tuple[Any, Sequence[str]]]) -> None:
    """Raise a ConfigError naming the first key (e.g. ``model.head``) whose value is not among its choices.

    Args:
        values: key -> (value, allowed values).
    """
    for key, (value, choices) in values.items():
        if value not in choices:
            raise ConfigError(f"{key}='{value}' is not one of {', '.join(choices)}")


def validate_engine_config(cfg: RunConfig) -> None:
    """Range and choice checks the types alone cannot express; raises ConfigError naming the key."""
    require_one_of({"train.precision": (cfg.train.precision, PRECISIONS),
                    "train.device": (cfg.train.device, ("auto", "cpu")), "optim.name": (cfg.optim.name, OPTIMIZERS),
                    "schedule.name": (cfg.schedule.name, SCHEDULES)})
    require_at_least({"train.epochs": cfg.train.epochs, "train.batch_size": cfg.train.batch_size,
                      "train.grad_accum": cfg.train.grad_accum, "train.keep_last": cfg.train.keep_last,
                      "train.log_every": cfg.train.log_every})
    non_negative: dict[str, float] = {
        "train.max_steps": cfg.train.max_steps, "train.clip_grad": cfg.train.clip_grad,
        "train.num_workers": cfg.train.num_workers, "train.eval_every": cfg.train.eval_every,
        "train.checkpoint_every": cfg.train.checkpoint_every, "optim.lr": cfg.optim.lr,
        "optim.weight_decay": cfg.optim.weight_decay, "optim.larc_trust": cfg.optim.larc_trust,
        "schedule.warmup_epochs": cfg.schedule.warmup_epochs}
    for key, number in non_negative.items():
        if number < 0:
            raise ConfigError(f"{key}={number} must not be negative")
    if cfg.train.batch_size % cfg.train.grad_accum:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be a multiple of "
                          f"train.grad_accum={cfg.train.grad_accum}")


def qualify_model_keys(layer: dict[str, Any] | list[str], model_config: type[Any], method: str = ""
                       ) -> dict[str, Any] | list[str]:
    """Put a preset's or the overrides' bare method keys under ``model``.

    A key whose first part is not an engine section (:data:`ENGINE_KEYS`) but a field of the method's
    ``Config`` is a model key: the override ``mode=image-only`` becomes ``model.mode=image-only``,
    ``sampler.mode=x`` becomes ``model.sampler.mode=x`` (when ``sampler`` is a field), and a preset's
    top-level ``sampler:`` mapping moves under ``model:``. Keys under an engine section pass unchanged,
    except a dotted key under a one-value engine key (:data:`ENGINE_SCALARS`) that names a model field:
    ``data.source=x`` is TRUST's ``model.data.source`` (the engine's ``data`` is the manifest path).

    Raises:
        ConfigError: an override without ``=``; a bare key that is neither an engine section nor a model
            field (the message lists both); a preset that sets a key both bare and under ``model``.
    """
    fields = [f.name for f in dataclasses.fields(model_config)] if dataclasses.is_dataclass(model_config) else []

    def is_model_key(key: str) -> bool:
        head, dot, _ = key.strip().partition(".")
        if head in ENGINE_SCALARS and dot and head in fields:
            return True  # e.g. TRUST's data.source: the engine's `data` is the manifest path, it has no fields
        if head in ENGINE_KEYS:
            return False
        if head in fields:
            return True
        raise ConfigError(f"unknown config key '{key.strip()}': the first part must be an engine section "
                          f"({', '.join(ENGINE_KEYS)}) or a model key of {method or 'the method'} "
                          f"({', '.join(fields) or 'none'})")

    if isinstance(layer, list):
        result = []
        for item in layer:
            key, sep, _ = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. train.epochs=3)")
            result.append(f"model.{item.strip()}" if is_model_key(key) else item)
        return result
    moved = {key: value for key, value in layer.items() if is_model_key(str(key))}
    if not moved:
        return layer
    model = dict(layer.get("model") or {})
    clash = sorted(set(moved) & set(model))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is set both at the top level and under model: keep one")
    return {**{k: v for k, v in layer.items() if k not in moved}, "model": {**model, **moved}}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping read with ``safe_load``; a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {type(content).__name__}")
    return content


def merge_config(schema: Any, *layers: dict[str, Any] | DictConfig | list[str]) -> DictConfig:
    """Merge layers (dicts, DictConfigs or ``key=value`` lists) onto a structured schema, type-checked.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, with the known keys of that section.
    """
    merged = OmegaConf.structured(schema)
    for layer in layers:
        update = OmegaConf.from_dotlist(layer) if isinstance(layer, list) else OmegaConf.create(layer)
        try:
            merged = OmegaConf.merge(merged, update)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", "") or ""
            section = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(merged, section) if section else merged
            known = ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else ""
            reason = str(exc.msg).splitlines()[0]
            raise ConfigError(f"bad config value{f' for {key}' if key else ''}: {reason}"
                              + (f". Known keys{f' in {section}' if section else ''}: {known}" if known else "")
                              ) from exc
    return merged


def to_yaml(cfg: Any) -> str:
    """A config (dataclass or DictConfig) as YAML text, for ``config.yaml`` in run folders."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg) if not isinstance(cfg, DictConfig) else cfg)
