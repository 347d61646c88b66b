"""The training loop: one code path from 1 CPU process to N GPUs, with exact resume.

``accelerate`` places the model, wraps it for DDP when launched by ``torchrun`` and runs mixed
precision; the loop itself is explicit: gradient accumulation with ``no_sync`` on all but the last
micro-batch, clipping, an optimizer and per-step schedule step, logging, checkpoints.

Exact resume rests on three things: checkpoints are taken only at optimizer-step boundaries; the
sampler and every sample's random draws are functions of ``(seed, epoch, index)``; and the state
that is not (weights, optimizer, schedule, each process's torch RNG for dropout) is saved. A run
killed with SIGKILL and resumed logs the same per-step losses as one that was never stopped.
SIGINT / SIGTERM finish the current step, save a checkpoint and stop.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from chronoclip.config import RunConfig
from chronoclip.data.datasets import collate, to_device
from chronoclip.engine import checkpoint as ckpt
from chronoclip.engine.logging import MetricsLog
from chronoclip.engine.optim import build_optimizer, build_scheduler
from chronoclip.engine.sampler import ResumableBatchSampler
from chronoclip.errors import ChronoclipError
from chronoclip.methods.base import Batch, Method

log = logging.getLogger(__name__)


class TrainingInterrupted(ChronoclipError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; resume with ``--resume``."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint saved at {checkpoint} — "
                         f"continue with --resume")


@dataclass
class Progress:
    """Where training is: epochs done, micro-batches consumed in the current epoch, optimizer steps."""

    epoch: int = 0
    micro: int = 0
    step: int = 0


def make_accelerator(cfg: RunConfig) -> Accelerator:
    """An Accelerator for the run's device and precision (DDP comes from the launcher's environment)."""
    cpu = cfg.train.device == "cpu" or not torch.cuda.is_available()
    precision = cfg.train.precision
    if cpu and precision == "fp16":
        log.warning("fp16 needs a GPU; using fp32 on the CPU")
        precision = "no"
    return Accelerator(cpu=cpu, mixed_precision=precision)


def _seed_worker(worker_id: int) -> None:
    # Samples draw from their own (seed, epoch, index) generators; this only fixes third-party RNG use.
    seed = torch.initial_seed() % 2**32
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


class Trainer:
    """Trains a method on a data set and writes the run's logs and checkpoints.

    Args:
        method: the model (a registered :class:`Method`).
        cfg: the run configuration.
        train_set: training samples (``set_epoch`` is called each epoch when present).
        run_dir: the run folder (``checkpoints/``, ``metrics.jsonl``).
        evaluate: called after an epoch with the unwrapped method; returns validation metrics
            (or ``None`` for no validation).
        accelerator: reuse one (tests); made from ``cfg`` when omitted.
    """

    def __init__(self, method: Method, cfg: RunConfig, train_set: Dataset[Any], run_dir: Path,
                 evaluate: Callable[[Method], dict[str, float] | None] | None = None,
                 accelerator: Accelerator | None = None) -> None:
        self.method, self.cfg, self.train_set, self.run_dir = method, cfg, train_set, run_dir
        self.evaluate = evaluate
        self.accelerator = accelerator or make_accelerator(cfg)
        self.checkpoints = run_dir / "checkpoints"
        self._stop_signal: int | None = None
        self._saved_step = -1
        self.sampler = ResumableBatchSampler(
            len(cast(Sized, train_set)), cfg.train.batch_size, cfg.train.grad_accum, self.accelerator.num_processes,
            self.accelerator.process_index, shuffle=True, seed=cfg.train.seed)
        epochs_steps = cfg.train.epochs * self.sampler.steps_per_epoch
        self.total_steps = min(epochs_steps, cfg.train.max_steps) if cfg.train.max_steps else epochs_steps
        self.optimizer = build_optimizer(method.param_groups(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.sampler.steps_per_epoch, epochs_steps)
        self.model, self.optimizer = self.accelerator.prepare(method, self.optimizer)
        self.progress = Progress()
        best_metric, best_mode = method.best_metric
        self.best_metric = cfg.train.best_metric or best_metric
        self.best_mode = best_mode

    # ------------------------------------------------------------------------------------ state
    def _rng_states(self) -> list[torch.Tensor]:
        """Every process's torch CPU RNG state (dropout), gathered so the main process can save them."""
        state = torch.get_rng_state()
        if self.accelerator.num_processes == 1:
            return [state]
        gathered = self.accelerator.gather(state.to(self.accelerator.device).unsqueeze(0))
        return [row.cpu() for row in gathered]

    def save(self, metrics: dict[str, float] | None = None) -> Path | None:
        """Checkpoint the current step (main process writes; every process takes part)."""
        rng = self._rng_states()
        self.accelerator.wait_for_everyone()
        path = None
        if self.accelerator.is_main_process:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "rng": rng}
            meta = {"epoch": self.progress.epoch, "micro": self.progress.micro, "method": self.method.name,
                    "class_names": self.method.class_names,
                    "metrics": metrics or {}}
            path = ckpt.save_checkpoint(self.checkpoints, self.progress.step, self.method.trainable_state(),
                                        state, meta)
            if metrics and self.best_metric in metrics:
                ckpt.update_best(self.checkpoints, path, self.best_metric, metrics[self.best_metric],
                                 self.best_mode)
            ckpt.prune_checkpoints(self.checkpoints, self.cfg.train.keep_last)
        self.accelerator.wait_for_everyone()
        self._saved_step = self.progress.step
        return path

    def restore(self) -> bool:
        """Load the latest checkpoint of the run folder; return whether there was one."""
        latest = ckpt.latest_checkpoint(self.checkpoints)
        if latest is None:
            return False
        loaded = ckpt.load_checkpoint(latest)
        load_trainable_state(self.method, loaded.weights, latest)
        self.optimizer.load_state_dict(loaded.state["optimizer"])
        self.scheduler.load_state_dict(loaded.state["scheduler"])
        rng = loaded.state["rng"]
        if len(rng) != self.accelerator.num_processes:
            log.warning("resuming %d processes from a checkpoint of %d: dropout draws will differ",
                        self.accelerator.num_processes, len(rng))
        torch.set_rng_state(rng[min(self.accelerator.process_index, len(rng) - 1)])
        self.progress = Progress(int(loaded.meta["epoch"]), int(loaded.meta["micro"]), loaded.step)
        self._saved_step = loaded.step
        log.info("resumed from %s (epoch %d, step %d)", latest, self.progress.epoch, self.progress.step)
        return True

    # ------------------------------------------------------------------------------------ signals
    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Turn SIGINT / SIGTERM into a request to stop at the next step boundary."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: FrameType | None) -> None:
            log.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)
            self._stop_signal = signum

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # ------------------------------------------------------------------------------------ loop
    def _loader(self) -> DataLoader[Any]:
        return DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=collate,
                          num_workers=self.cfg.train.num_workers, worker_init_fn=_seed_worker,
                          generator=torch.Generator().manual_seed(self.cfg.train.seed),
                          pin_memory=self.accelerator.device.type == "cuda")

    def _micro_step(self, batch: Batch, last: bool) -> dict[str, float]:
        """Forward, loss and backward of one micro-batch; returns the loss parts as floats."""
        sync = last or self.accelerator.num_processes == 1
        with nullcontext() if sync else self.accelerator.no_sync(self.model), self.accelerator.autocast():
            outputs = self.model(batch)
            parts = self.method.loss(outputs, batch)
            self.accelerator.backward(parts["loss"] / self.cfg.train.grad_accum)
        return {k: float(v.detach()) for k, v in parts.items()}

    def _optimizer_step(self) -> None:
        if self.cfg.train.clip_grad:
            params = [p for p in self.method.parameters() if p.requires_grad]
            self.accelerator.clip_grad_norm_(params, self.cfg.train.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step += 1

    def _step_row(self, sums: dict[str, float], count: int, started: float) -> dict[str, Any]:
        means = torch.tensor([sums[k] / count for k in sorted(sums)], device=self.accelerator.device)
        means = self.accelerator.reduce(means, "mean") if self.accelerator.num_processes > 1 else means
        row: dict[str, Any] = {"step": self.progress.step, "epoch": self.progress.epoch}
        row.update({k: float(v) for k, v in zip(sorted(sums), means.tolist(), strict=True)})
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["time"] = round(time.time() - started, 3)
        return row

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train to the configured end; returns the rows logged by this call.

        Raises:
            TrainingInterrupted: after a SIGINT/SIGTERM (a checkpoint was saved first).
        """
        if resume and not self.restore():
            log.info("no checkpoint in %s: starting from scratch", self.checkpoints)
        metrics_log = MetricsLog(self.run_dir, self.progress.step if resume else None) \
            if self.accelerator.is_main_process else None
        rows: list[dict[str, Any]] = []
        accum = self.cfg.train.grad_accum
        started = time.time()
        try:
            with self._signals():
                while self.progress.epoch < self.cfg.train.epochs and not self._finished():
                    self._train_epoch(metrics_log, rows, accum, started)
                    if self.progress.micro == 0:  # the epoch completed
                        metrics = self._validate(metrics_log, rows)
                        if metrics or not self.cfg.train.checkpoint_every:
                            self.save(metrics)
            if self._saved_step != self.progress.step:
                self.save(self._validate(metrics_log, rows))
        finally:
            if metrics_log is not None:
                metrics_log.close()
        return rows

    def _finished(self) -> bool:
        return bool(self.cfg.train.max_steps) and self.progress.step >= self.cfg.train.max_steps

    def _train_epoch(self, metrics_log: MetricsLog | None, rows: list[dict[str, Any]], accum: int,
                     started: float) -> None:
        epoch = self.progress.epoch
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip=self.progress.micro)
        self.model.train()
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(total=self.sampler.micro_batches_per_epoch, initial=self.progress.micro, unit="batch",
                   desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}",
                   disable=not self.accelerator.is_main_process)
        for batch in self._loader():
            last = (self.progress.micro + 1) % accum == 0
            for key, value in self._micro_step(to_device(batch, self.accelerator.device), last).items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            self.progress.micro += 1
            bar.update(1)
            if not last:
                continue
            self._optimizer_step()
            row = self._step_row(sums, count, started)
            sums, count = {}, 0
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if metrics_log is not None:
                metrics_log.write(row)
                if self.progress.step % self.cfg.train.log_every == 0:
                    log.info("step %d/%d loss %.4f", self.progress.step, self.total_steps, row["loss"])
            every = self.cfg.train.checkpoint_every
            if every and self.progress.step % every == 0:
                self.save()
            if self._stop_signal is not None:
                bar.close()
                raise TrainingInterrupted(self._stop_signal, self.save())
            if self._finished():
                break
        bar.close()
        if self.progress.micro >= self.sampler.micro_batches_per_epoch:
            self.progress.epoch += 1
            self.progress.micro = 0

    def _validate(self, metrics_log: MetricsLog | None, rows: list[dict[str, Any]]) -> dict[str, float] | None:
        due = self.cfg.train.eval_every and self.progress.epoch % self.cfg.train.eval_every == 0
        last = self.progress.epoch >= self.cfg.train.epochs or self._finished()
        if self.evaluate is None or not (due or last):
            return None
        self.model.eval()
        with torch.no_grad():
            metrics = self.evaluate(self.method)
        if not metrics:
            return None
        row = {"step": self.progress.step, "epoch": self.progress.epoch,
               **{f"val/{k}": v for k, v in metrics.items()}}
        rows.append(row)
        if metrics_log is not None:
            metrics_log.write(row)
        log.info("epoch %d validation: %s", self.progress.epoch,
                 ", ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
        return metrics


def load_trainable_state(method: Method, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load checkpoint weights into a method; every trainable tensor must be present and nothing extra.

    Raises:
        ChronoclipError: missing or unexpected keys (the checkpoint belongs to another method/config).
    """
    expected = set(method.trainable_state())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - set(method.state_dict()))
    if missing or unexpected:
        raise ChronoclipError(f"{source}: checkpoint does not fit this {method.name} model "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}); was it written with "
                              f"another method or config?")
    method.load_state_dict(weights, strict=False)
