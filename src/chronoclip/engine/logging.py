"""Run logs: ``metrics.jsonl`` (one JSON row per logged step or evaluation) and optional TensorBoard.

``metrics.jsonl`` is append-only; on resume, rows written after the checkpoint being resumed from
are dropped first, so the file always reads as one consistent history.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from chronoclip.io.writers import atomic_path

log = logging.getLogger(__name__)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` (an incomplete last line, left by a kill, is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping an incomplete line", path)
    return rows


class MetricsLog:
    """Appends rows to ``metrics.jsonl`` and mirrors scalars to TensorBoard when it is installed."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.jsonl"
        if resume_step is not None:
            kept = [row for row in read_history(self.path) if row.get("step", 0) <= resume_step]
            with atomic_path(self.path) as temp:
                temp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tensorboard = self._open_tensorboard(run_dir / "tensorboard") if tensorboard else None

    @staticmethod
    def _open_tensorboard(folder: Path) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.debug("tensorboard is not installed; metrics go to metrics.jsonl only")
            return None
        return SummaryWriter(str(folder))

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (flushed at once, so a kill loses at most the row being written)."""
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            step = int(row.get("step", 0))
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "step" and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
