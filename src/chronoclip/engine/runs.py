"""Runs: ``train`` a registered method into a run folder, ``load_run`` it back, ``evaluate`` it.

A run folder holds ``config.yaml`` (everything the run is a function of), ``metrics.jsonl``
(per step / epoch), ``metrics.json`` (final, on the manifest's test split, with its protocol),
``checkpoints/``, ``plots/``, ``report.md`` and ``tensorboard/`` when TensorBoard is installed.

Example:
    >>> import chronoclip                                                      # doctest: +SKIP
    >>> run = chronoclip.train("frame-probe", data="data/motion/manifest.csv",  # doctest: +SKIP
    ...                        backbone="tiny", out="runs/probe", overrides=["train.epochs=2"])
    >>> run.metrics["top1"]                                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from chronoclip.config import (
    DEFAULT_BACKBONE,
    RunConfig,
    merge_config,
    qualify_model_keys,
    read_yaml,
    to_yaml,
    validate_engine_config,
)
from chronoclip.data.datasets import ManifestDataset, PartedDataset
from chronoclip.data.manifest import Manifest, labels_missing_from_train, load_manifest
from chronoclip.engine import checkpoint as ckpt
from chronoclip.engine.features import cache_root, cached_features
from chronoclip.engine.logging import read_history
from chronoclip.engine.trainer import Trainer, load_trainable_state, make_accelerator
from chronoclip.errors import ChronoclipError, ConfigError, ManifestError
from chronoclip.eval.run_protocols import ReportInputs, run_protocol
from chronoclip.io.writers import atomic_path, write_json
from chronoclip.methods import get_method
from chronoclip.methods.base import FrozenFeatures, Method

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A trained run loaded from its folder: the config, the method with its best weights, the metrics."""

    path: Path
    config: RunConfig
    method: Method
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return self.method.class_names


def build_run_config(method: str, data: str | Path = "", backbone: str = DEFAULT_BACKBONE,
                     config: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """The run's configuration: defaults < preset YAML < ``key=value`` overrides, validated.

    ``config`` is a YAML file or the name of a packaged recipe (``dist/k400-b16-8f.yaml``); without it the
    preset is the method's packaged default recipe, if it names one (:attr:`Method.default_config`).
    A key whose first part is not an engine section is a key of the method's model config, in the preset
    and the overrides: ``mode=image-only`` means ``model.mode=image-only``, ``sampler.mode=mild`` means
    ``model.sampler.mode=mild`` (:func:`~chronoclip.config.qualify_model_keys`).

    Raises:
        ConfigError: unknown method, key or value (the message names it and what is allowed).
    """
    method_cls = get_method(method)
    schema = RunConfig(method=method, backbone=backbone, data=str(data), model=method_cls.Config())
    preset = read_yaml(recipe_path(config)) if config else default_preset(method_cls)
    merged = merge_config(schema, qualify_model_keys(preset, method_cls.Config, method),
                          qualify_model_keys(list(overrides), method_cls.Config, method))
    try:
        cfg: RunConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as exc:  # the method Config's own __post_init__ validation
        raise ConfigError(f"invalid {method} configuration: {exc}") from exc
    validate_engine_config(cfg)
    return cfg


def recipe_path(config: str | Path) -> Path:
    """``config`` itself when it is a file, else the packaged recipe of that name under ``chronoclip/configs/``
    (e.g. ``dist/k400-b16-8f.yaml``), so recipes are found from an installed wheel too."""
    path = Path(config)
    packaged = Path(str(resources.files("chronoclip") / "configs")) / path
    return packaged if not path.is_file() and not path.is_absolute() and packaged.is_file() else path


def default_preset(method_cls: type[Method]) -> dict[str, Any]:
    """The packaged recipe a method runs with when no ``--config`` is given (``Method.default_config``)."""
    return read_yaml(recipe_path(method_cls.default_config)) if method_cls.default_config else {}


def _seeded_method(cfg: RunConfig, class_names: list[str]) -> Method:
    from chronoclip.backbones import load_backbone

    torch.manual_seed(cfg.train.seed)
    backbone = load_backbone(cfg.backbone)
    return get_method(cfg.method)(cfg.model, backbone, class_names)


def _split_or_none(manifest: Manifest, name: str) -> Manifest | None:
    return manifest.split(name) if name in manifest.splits else None


def train(method: str, data: str | Path, out: str | Path, backbone: str = DEFAULT_BACKBONE,
          config: str | Path | None = None, overrides: Sequence[str] = (), resume: bool = False) -> Run:
    """Train ``method`` on the manifest's ``train`` split; evaluate on ``val`` each epoch and ``test`` at the end.

    The final metrics use the best checkpoint by the validation metric when there is a ``val`` split,
    else the last one.

    Args:
        method: a registered method name (``chronoclip.methods.list_methods()``).
        data: the manifest.
        out: the run folder.
        backbone: a preset, a local Hugging Face CLIP folder or a hub id.
        config: a preset YAML (sections ``train``, ``optim``, ``schedule``, ``model``).
        overrides: ``key=value`` strings, e.g. ``["train.epochs=3", "model.frames=4"]``.
        resume: continue from the run folder's latest checkpoint with its saved configuration.
    """
    out = Path(out)
    saved = out / "config.yaml"
    has_checkpoint = ckpt.latest_checkpoint(out / "checkpoints") is not None
    if resume and saved.is_file():
        saved_method = read_yaml(saved).get("method")
        if saved_method != method:
            raise ConfigError(f"{out} is a {saved_method} run; resume it with `chronoclip train {saved_method}`")
        cfg = build_run_config(method, config=saved, overrides=overrides)
    else:
        if not resume and has_checkpoint:
            raise ChronoclipError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        cfg = build_run_config(method, data, backbone, config, overrides)
    manifest = load_manifest(cfg.data)
    train_rows = manifest.split("train")
    class_names = class_names_of(train_rows, cfg)
    unseen = labels_missing_from_train(manifest) if get_method(cfg.method).run_protocol == "classify" else []
    if unseen:
        raise ManifestError(manifest.name, unseen, hint="A classifier only predicts labels it was trained on: "
                            "add train rows for them or drop those rows (zero-shot evaluation takes any label).")
    model = _seeded_method(cfg, class_names)
    if not (resume and has_checkpoint):  # a fresh run
        model.initialise(train_rows)
    accelerator = make_accelerator(cfg)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved) as temp:
            temp.write_text(to_yaml(cfg), encoding="utf-8")
    train_set = with_io(model.dataset(train_rows, train=True, seed=cfg.train.seed), cfg)
    frozen = cache_extractor(model, cfg)
    if frozen is not None:
        with accelerator.main_process_first():
            train_set = _cached_where_possible(model, frozen, train_set, cfg, accelerator.device)
    val_rows = _split_or_none(manifest, "val")
    if val_rows is not None:
        val_rows = model.evaluation_rows(val_rows, "val")
    eval_kwargs = {"batch_size": cfg.train.batch_size, "device": accelerator.device, "progress": False}
    val_sets: tuple[Dataset[Any], Dataset[Any] | None] | None = None

    def validate(method_: Method) -> dict[str, float] | None:
        nonlocal val_sets
        if val_rows is None:
            return None
        if val_sets is None:
            val_sets = (eval_dataset(method_, cfg, val_rows, accelerator.device, frozen),
                        reference_dataset(method_, cfg, train_rows, accelerator.device, frozen))
        result, _ = evaluate_split(method_, val_sets[0], {"split": "val"}, reference=val_sets[1], **eval_kwargs)
        return {k: v for k, v in result.items() if isinstance(v, float)}

    trainer = Trainer(model, cfg, train_set, out, validate, accelerator)
    trainer.fit(resume=resume)
    chosen = _chosen_checkpoint(out)
    load_trainable_state(model, ckpt.load_checkpoint(chosen).weights, chosen)
    run = Run(out, cfg, model.eval())
    final_split = next((s for s in ("test", "val") if s in manifest.splits), None)
    if final_split is None:
        log.warning("%s has no test or val split: no final metrics (metrics.json is not written)", manifest.name)
    elif final_split != "test":
        log.warning("%s has no test split: final metrics are on the val split", manifest.name)
    if accelerator.is_main_process and final_split is not None:
        run.metrics = evaluate(run, manifest, split=final_split, out=out, device=accelerator.device)
    return run


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is a run folder (it holds the ``config.yaml`` a run writes first)."""
    return (Path(path) / "config.yaml").is_file()


def load_run(path: str | Path, checkpoint: str = "best") -> Run:
    """Load a run folder: its config, the method with the ``best`` (or ``latest``) weights, its metrics.

    Raises:
        ChronoclipError: not a run folder, or no checkpoint in it.
    """
    path = Path(path)
    if not is_run_folder(path):
        raise ChronoclipError(f"{path} is not a run folder (no config.yaml); train one with `chronoclip train`")
    raw = read_yaml(path / "config.yaml")
    cfg = build_run_config(raw.get("method", ""), config=path / "config.yaml")
    chosen = _chosen_checkpoint(path, checkpoint)
    loaded = ckpt.load_checkpoint(chosen)
    class_names = loaded.meta.get("class_names") or _class_names_of(cfg)
    method = _seeded_method(cfg, class_names)
    load_trainable_state(method, loaded.weights, chosen)
    method.eval()
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    return Run(path, cfg, method, metrics)


def _chosen_checkpoint(path: Path, checkpoint: str = "best") -> Path:
    """The run's ``best`` checkpoint (falling back to the latest), or its ``latest``."""
    chosen = ckpt.best_checkpoint(path / "checkpoints") if checkpoint == "best" else None
    chosen = chosen or ckpt.latest_checkpoint(path / "checkpoints")
    if chosen is None:
        raise ChronoclipError(f"{path}: no checkpoint yet (checkpoints/ is empty)")
    return chosen


def cache_extractor(method: Method, cfg: RunConfig) -> FrozenFeatures | None:
    """The frozen extractor whose outputs the run caches, or ``None`` when the cache is not used.

    Computed once per run or evaluation: its namespace hashes the backbone's weights.
    """
    return method.frozen_features() if cfg.train.cache else None


def _cached(method: Method, frozen: FrozenFeatures, dataset: ManifestDataset, cfg: RunConfig,
            device: torch.device | str) -> Dataset[Any]:
    method.to(device)
    return cached_features(dataset, frozen, cache_root(cfg.train.cache_dir), device, cfg.train.batch_size)


def with_io(dataset: Dataset[Any], cfg: RunConfig) -> Dataset[Any]:
    """``dataset`` decoding media as the run's ``io`` section says, in every :class:`ManifestDataset`
    (alone or a part of a :class:`PartedDataset`); a method's own data set type keeps its reader's defaults."""
    if isinstance(dataset, PartedDataset):
        return dataset.map_parts(lambda part: with_io(part, cfg))
    if isinstance(dataset, ManifestDataset) and dataset.spec.autorotate != cfg.io.autorotate:
        return dataset.with_spec(autorotate=cfg.io.autorotate)
    return dataset


def _cached_where_possible(method: Method, frozen: FrozenFeatures, dataset: Dataset[Any], cfg: RunConfig,
                           device: torch.device | str) -> Dataset[Any]:
    """``dataset`` with its cacheable parts (a :class:`ManifestDataset` whose samples are the same every
    epoch, alone or as a part of a :class:`PartedDataset`) replaced by their cached frozen features."""
    if isinstance(dataset, PartedDataset):
        return dataset.map_parts(lambda part: _cached_where_possible(method, frozen, part, cfg, device))
    if isinstance(dataset, ManifestDataset) and dataset.spec.deterministic(dataset.train):
        return _cached(method, frozen, dataset, cfg, device)
    return dataset


def eval_dataset(method: Method, cfg: RunConfig, rows: Manifest, device: torch.device | str,
                 frozen: FrozenFeatures | None) -> Dataset[Any]:
    """Evaluation samples of ``rows`` for ``method``: cached frozen features when ``frozen`` is given
    (and the method's data set is the engine's :class:`ManifestDataset`)."""
    dataset = with_io(method.dataset(rows, train=False, seed=cfg.train.seed), cfg)
    if frozen is not None and isinstance(dataset, ManifestDataset):
        return _cached(method, frozen, dataset, cfg, device)
    return dataset


def reference_dataset(method: Method, cfg: RunConfig, train_rows: Manifest, device: torch.device | str,
                      frozen: FrozenFeatures | None) -> Dataset[Any] | None:
    """The training split as evaluation samples, for a run protocol that fits on it (else ``None``)."""
    if not run_protocol(method.run_protocol).needs_reference:
        return None
    return eval_dataset(method, cfg, train_rows, device, frozen)


def class_names_of(train_rows: Manifest, cfg: RunConfig) -> list[str]:
    """The run's class names from its training rows (:meth:`~Method.class_names_from`)."""
    return get_method(cfg.method).class_names_from(train_rows, cfg.model)


def _class_names_of(cfg: RunConfig) -> list[str]:
    return class_names_of(load_manifest(cfg.data, check_files=False).split("train"), cfg)


def evaluate_split(method: Method, dataset: Dataset[Any], protocol: dict[str, Any], *, batch_size: int,
                   device: torch.device | str, progress: bool = True, reference: Dataset[Any] | None = None
                   ) -> tuple[dict[str, Any], ReportInputs]:
    """The method's :attr:`~Method.run_protocol` on an evaluation data set.

    Args:
        reference: the training split as evaluation samples, for protocols that fit on it
            (:func:`reference_dataset`).

    Returns:
        The result (metrics and ``protocol``), and the evaluator's extra inputs of the report (e.g. the
        classes, predictions and targets of its confusion matrix).
    """
    method.to(device)
    evaluator = run_protocol(method.run_protocol)
    if evaluator.needs_reference and reference is None:
        raise ValueError(f"run protocol '{method.run_protocol}' fits on the training split: pass reference=")
    return evaluator.evaluate(method, dataset, protocol, batch_size=batch_size, device=device, progress=progress,
                              reference=reference)


def evaluate(run: Run, data: str | Path | Manifest, split: str = "test", out: str | Path | None = None,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """A run's metrics (its method's :attr:`~Method.run_protocol`) on one split of a manifest; written to
    ``out/metrics.json`` with a report."""
    manifest = data if isinstance(data, Manifest) else load_manifest(data)
    rows = run.method.evaluation_rows(manifest.split(split), split)
    spec = run.method.sample_spec()
    frozen = cache_extractor(run.method, run.config)
    dataset = eval_dataset(run.method, run.config, rows, device, frozen)
    reference = reference_dataset(run.method, run.config, manifest.split("train"), device, frozen)
    protocol = {"split": split, "manifest": manifest.name, "clips": spec.eval_clips, "crops": spec.eval_crops,
                "frames": spec.frames, "sampling": spec.eval_sampling}
    result, report_inputs = evaluate_split(run.method, dataset, protocol, batch_size=run.config.train.batch_size,
                                           device=device, reference=reference)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", result)
        _write_report(out, run, result, report_inputs)
    return result


def _write_report(out: Path, run: Run, result: dict[str, Any], report_inputs: ReportInputs) -> None:
    from chronoclip.eval.report import write_report

    write_report(out, read_history(run.path / "metrics.jsonl"), result, **report_inputs)
