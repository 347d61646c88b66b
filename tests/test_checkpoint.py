"""Checkpoints: round trip without pickle, atomicity, keep-last-k and best-by-metric."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chronoclip.engine import checkpoint as ckpt
from chronoclip.errors import ChronoclipError


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    state = {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "position": [3, 7]}
    path = ckpt.save_checkpoint(tmp_path, 12, model.state_dict(), state, {"epoch": 1, "metrics": {"top1": 50.0}})
    assert path.name == "step-00000012"
    loaded = ckpt.load_checkpoint(path)
    assert loaded.step == 12 and loaded.meta["epoch"] == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.weights[name], tensor)
    restored = torch.optim.AdamW(model.parameters(), lr=1e-2)
    restored.load_state_dict(loaded.state["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(loaded.state["rng"], state["rng"])


def test_state_with_code_objects_is_refused_on_load(tmp_path: Path) -> None:
    path = ckpt.save_checkpoint(tmp_path, 1, {}, {"bad": Path("x")}, {})
    with pytest.raises(Exception, match=r"[Ww]eights only"):
        ckpt.load_checkpoint(path)


def test_a_crash_mid_save_leaves_no_checkpoint_and_is_cleaned_next_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", explode)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, 5, {"w": torch.ones(2)}, {}, {})
    monkeypatch.undo()
    assert ckpt.list_checkpoints(tmp_path) == [] and ckpt.latest_checkpoint(tmp_path) is None
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    ckpt.save_checkpoint(tmp_path, 6, {"w": torch.ones(2)}, {}, {})
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000006"]


def test_keep_last_k_protects_the_best(tmp_path: Path) -> None:
    for step, top1 in [(1, 10.0), (2, 80.0), (3, 40.0), (4, 50.0)]:
        path = ckpt.save_checkpoint(tmp_path, step, {"w": torch.full((1,), float(step))}, {}, {})
        ckpt.update_best(tmp_path, path, "top1", top1)
        ckpt.prune_checkpoints(tmp_path, keep_last=1)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002", "step-00000004"]
    assert ckpt.best_checkpoint(tmp_path) == tmp_path / "step-00000002"
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step-00000004"


def test_best_in_min_mode_and_bad_arguments(tmp_path: Path) -> None:
    first = ckpt.save_checkpoint(tmp_path, 1, {}, {}, {})
    second = ckpt.save_checkpoint(tmp_path, 2, {}, {}, {})
    assert ckpt.update_best(tmp_path, first, "mae", 3.0, mode="min")
    assert not ckpt.update_best(tmp_path, second, "mae", 4.0, mode="min")
    assert ckpt.best_checkpoint(tmp_path) == first
    with pytest.raises(ValueError):
        ckpt.update_best(tmp_path, first, "mae", 1.0, mode="lowest")
    with pytest.raises(ValueError):
        ckpt.prune_checkpoints(tmp_path, 0)


def test_incomplete_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "step-00000001").mkdir()
    assert ckpt.list_checkpoints(tmp_path) == []
    with pytest.raises(ChronoclipError, match=r"missing model\.safetensors"):
        ckpt.load_checkpoint(tmp_path / "step-00000001")
