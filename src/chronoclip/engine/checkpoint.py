"""Checkpoints: safetensors weights + pickle-free training state, written atomically.

A checkpoint is a folder ``checkpoints/step-00000123/`` holding

- ``model.safetensors`` — the weights the run trains (frozen towers are reloaded from the backbone spec);
- ``state.pt`` — optimizer / scheduler / RNG / data-position state, containing only tensors, numbers,
  strings, lists and dicts, so it loads with ``torch.load(weights_only=True)`` (never unpickles code);
- ``meta.json`` — step, epoch, metrics, and anything else JSON-able.

The folder is written under a temporary name, fsynced and renamed into place, so a crash (even
SIGKILL) never leaves a half-written checkpoint under a final name; leftovers are removed on the
next save. ``best.json`` names the best checkpoint by a metric and protects it from pruning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from chronoclip.errors import ChronoclipError
from chronoclip.io.writers import atomic_path, fsync_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{8})$")
_TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint loaded from disk."""

    path: Path
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def checkpoint_path(folder: Path, step: int) -> Path:
    """Where the checkpoint of optimizer step ``step`` lives."""
    return folder / f"step-{step:08d}"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest first (temporary leftovers are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "meta.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, or ``None``."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def save_checkpoint(folder: str | Path, step: int, weights: Mapping[str, torch.Tensor],
                    state: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write a checkpoint atomically and return its folder.

    Args:
        folder: the run's ``checkpoints/`` folder.
        step: optimizer steps done; names the checkpoint.
        weights: tensors to store in safetensors (copied to contiguous CPU tensors).
        state: weights-only-loadable content (tensors, numbers, strings, lists, dicts).
        meta: JSON-able metadata; ``step`` is added.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f"{_TEMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    final = checkpoint_path(folder, step)
    temp = folder / f"{_TEMP_PREFIX}{final.name}-{os.getpid()}"
    temp.mkdir()
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in weights.items()}
    save_file(tensors, str(temp / "model.safetensors"))
    torch.save(dict(state), temp / "state.pt")
    (temp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2, sort_keys=True) + "\n")
    for name in ("model.safetensors", "state.pt", "meta.json"):
        _fsync_file(temp / name)
    if final.exists():  # re-saving a step (e.g. the final save after a signal): replace it whole
        shutil.rmtree(final)
    os.replace(temp, final)
    fsync_dir(folder)
    return final


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint folder (weights, state and meta) without unpickling code.

    Raises:
        ChronoclipError: the folder is missing or incomplete.
    """
    path = Path(path)
    missing = [n for n in ("model.safetensors", "state.pt", "meta.json") if not (path / n).is_file()]
    if missing:
        raise ChronoclipError(f"{path}: not a complete checkpoint (missing {', '.join(missing)})")
    return Checkpoint(
        path=path,
        weights=load_file(str(path / "model.safetensors")),
        state=torch.load(path / "state.pt", weights_only=True, map_location="cpu"),
        meta=json.loads((path / "meta.json").read_text()),
    )


def best_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint recorded in ``best.json``, if it still exists."""
    record = Path(folder) / "best.json"
    if not record.is_file():
        return None
    best = Path(folder) / json.loads(record.read_text())["checkpoint"]
    return best if (best / "meta.json").is_file() else None


def update_best(folder: str | Path, checkpoint: Path, metric: str, value: float, mode: str = "max") -> bool:
    """Record ``checkpoint`` as best if ``value`` beats the recorded one; return whether it did."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got '{mode}'")
    record = Path(folder) / "best.json"
    if record.is_file():
        previous = json.loads(record.read_text())
        if previous.get("metric") == metric:
            better = value > previous["value"] if mode == "max" else value < previous["value"]
            if not better:
                return False
    with atomic_path(record) as temp:
        temp.write_text(json.dumps({"checkpoint": checkpoint.name, "metric": metric, "value": value,
                                    "mode": mode}, indent=2) + "\n")
    return True


def prune_checkpoints(folder: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints, never the best one; return what was removed."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, got {keep_last}")
    protected = best_checkpoint(folder)
    removed = []
    for path in list_checkpoints(folder)[:-keep_last]:
        if path != protected:
            shutil.rmtree(path)
            removed.append(path)
    return removed
