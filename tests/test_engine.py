"""The engine: sampler, optimizer groups and schedules, config merging, trainer, exact resume, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from chronoclip.config import OptimConfig, RunConfig, ScheduleConfig, merge_config, validate_engine_config
from chronoclip.engine import checkpoint as ckpt
from chronoclip.engine.logging import read_history
from chronoclip.engine.optim import build_optimizer, build_scheduler, lr_factor
from chronoclip.engine.sampler import ResumableBatchSampler
from chronoclip.errors import ConfigError
from chronoclip.methods.base import ParamGroup

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import run as run_toy

TOY_SCRIPT = Path(__file__).parent / "toy_training.py"


# ----------------------------------------------------------------------------------------- sampler
def test_ranks_split_each_global_batch_exactly() -> None:
    single = list(ResumableBatchSampler(40, 8, grad_accum=2, world_size=1, seed=3))
    ranks = [list(ResumableBatchSampler(40, 8, grad_accum=2, world_size=2, rank=r, seed=3)) for r in (0, 1)]
    assert len(single) == 10 and all(len(b) == 4 for b in single)
    assert [a + b for a, b in zip(*ranks, strict=True)] == single


def test_epochs_differ_and_resume_skips_consumed_micro_batches() -> None:
    sampler = ResumableBatchSampler(30, 6, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == first[2:] and len(sampler) == 3
    assert sorted(i for b in first for i in b) == list(range(30))


def test_sampler_rejects_impossible_batches() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        ResumableBatchSampler(40, 6, grad_accum=4)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        ResumableBatchSampler(4, 8)


# ----------------------------------------------------------------------------------------- optim
def _groups() -> tuple[torch.nn.Module, list[ParamGroup]]:
    model = torch.nn.ModuleDict({"body": torch.nn.Linear(4, 4), "pred": torch.nn.Linear(4, 2)})
    return model, [ParamGroup("body", list(model["body"].parameters()), lr_scale=0.1),
                   ParamGroup("pred", list(model["pred"].parameters()), fixed_lr=True)]


def test_groups_split_decay_and_keep_fixed_lr_constant() -> None:
    _, groups = _groups()
    optimizer = build_optimizer(groups, OptimConfig(lr=1.0, weight_decay=0.5))
    names = {g["name"]: g for g in optimizer.param_groups}
    assert set(names) == {"body/decay", "body/no_decay", "pred/decay", "pred/no_decay"}
    assert names["body/no_decay"]["weight_decay"] == 0.0 and names["body/decay"]["weight_decay"] == 0.5
    assert names["body/decay"]["lr"] == pytest.approx(0.1)
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="cosine", warmup_epochs=1), 5, 20)
    seen = []
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        seen.append({g["name"]: g["lr"] for g in optimizer.param_groups})
    assert all(s["pred/decay"] == 1.0 for s in seen)
    assert seen[-1]["body/decay"] == pytest.approx(0.0, abs=1e-9)
    assert max(s["body/decay"] for s in seen) == pytest.approx(0.1)


def test_schedule_shapes() -> None:
    warm = lr_factor(ScheduleConfig(name="cosine", warmup_epochs=2, min_lr_ratio=0.1), 10, 100)
    assert warm(0) == pytest.approx(0.05) and warm(19) == pytest.approx(1.0)
    assert warm(100) == pytest.approx(0.1)
    step = lr_factor(ScheduleConfig(name="step", milestones=[2, 4], gamma=0.5), 10, 60)
    assert [step(s) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]


def test_group_errors() -> None:
    model, groups = _groups()
    with pytest.raises(ConfigError, match="more than one group"):
        build_optimizer([*groups, ParamGroup("again", list(model["pred"].parameters()))], OptimConfig())
    model["pred"].weight.requires_grad_(False)
    with pytest.raises(ConfigError, match="frozen parameter"):
        build_optimizer(groups, OptimConfig())


# ----------------------------------------------------------------------------------------- config
def test_config_overrides_are_typed_and_unknown_keys_named() -> None:
    cfg = merge_config(RunConfig(), ["train.epochs=3", "optim.lr=0.5"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == 0.5
    with pytest.raises(ConfigError, match=r"train\.epoch.*Known keys in train: epochs"):
        merge_config(RunConfig(), ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        merge_config(RunConfig(), ["train.epochs=three"])


@pytest.mark.parametrize(("key", "value", "message"), [
    ("precision", "fp8", "precision"), ("batch_size", 0, "batch_size"), ("grad_accum", 3, "multiple"),
])
def test_engine_config_validation(key: str, value: object, message: str) -> None:
    cfg = RunConfig()
    setattr(cfg.train, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_engine_config(cfg)


# ----------------------------------------------------------------------------------------- trainer
def test_loss_falls_and_run_folder_is_written(tmp_path: Path) -> None:
    rows = run_toy(tmp_path, ["train.epochs=6", "model.dropout=0.0"])
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 * 6
    assert sum(losses[-6:]) < 0.5 * sum(losses[:6])
    assert len(read_history(tmp_path / "metrics.jsonl")) == len(rows)
    latest = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    assert latest is not None and ckpt.load_checkpoint(latest).step == 36
    assert len(ckpt.list_checkpoints(tmp_path / "checkpoints")) == 2  # keep_last


def test_max_steps_and_grad_accum(tmp_path: Path) -> None:
    rows = run_toy(tmp_path, ["train.max_steps=4", "train.grad_accum=2"])
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    meta = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "checkpoints")).meta  # type: ignore[arg-type]
    assert meta["micro"] == 8 and meta["epoch"] == 0


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_history(run_dir / "metrics.jsonl") if "loss" in r}


def _spawn(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(TOY_SCRIPT), str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(run_dir: Path, process: subprocess.Popen[str], min_step: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
        if latest is not None and ckpt.load_checkpoint(latest).step >= min_step:
            return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_mid_epoch_then_resume_gives_the_same_losses(tmp_path: Path) -> None:
    args = ("train.checkpoint_every=1", "train.keep_last=50", "model.step_sleep=0.05")
    reference = tmp_path / "reference"
    assert "done" in subprocess.run([sys.executable, str(TOY_SCRIPT), str(reference), *args],
                                    capture_output=True, text=True, check=True).stdout
    killed = tmp_path / "killed"
    process = _spawn(killed, *args)
    _wait_for_checkpoint(killed, process, min_step=8)  # mid-epoch 2 (6 steps per epoch)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps_before = max(_losses(killed))
    assert steps_before < 18
    resumed = subprocess.run([sys.executable, str(TOY_SCRIPT), str(killed), *args, "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout
    expected, got = _losses(reference), _losses(killed)
    assert sorted(got) == sorted(expected) == list(range(1, 19))
    assert got == pytest.approx(expected, abs=1e-6)


def test_sigterm_saves_a_checkpoint_before_exit(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "model.step_sleep=0.05", "train.epochs=50")
    _wait_for_first_row(tmp_path, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0 and "SIGTERM" in output
    latest = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    assert latest is not None
    assert ckpt.load_checkpoint(latest).step == max(_losses(tmp_path))


def _wait_for_first_row(run_dir: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.time() + 60
    while not _losses(run_dir):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)


def test_two_process_ddp_equals_one_process(tmp_path: Path) -> None:
    args = ["model.dropout=0.0", "train.epochs=2", "train.batch_size=16"]
    run_toy(tmp_path / "single", args)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(TOY_SCRIPT), str(tmp_path / "ddp"), *args],
        capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    single = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "single" / "checkpoints"))  # type: ignore[arg-type]
    ddp = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "ddp" / "checkpoints"))  # type: ignore[arg-type]
    assert single.step == ddp.step == 12
    for name, tensor in single.weights.items():
        torch.testing.assert_close(ddp.weights[name], tensor, rtol=0, atol=1e-5)
