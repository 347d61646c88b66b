"""A toy method and data set for engine tests, runnable as a script (for SIGKILL and DDP tests).

``python tests/toy_training.py RUN_DIR [key=value ...] [--resume]`` trains the toy method with the
real :class:`~chronoclip.engine.trainer.Trainer` and prints ``done`` at the end.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chronoclip.config import RunConfig, merge_config
from chronoclip.data.datasets import SampleSpec
from chronoclip.engine.trainer import Trainer
from chronoclip.methods.base import Batch, Method


@dataclass
class ToyConfig:
    hidden: int = 16
    dropout: float = 0.2
    step_sleep: float = 0.0


class ToyMethod(Method):
    """A small MLP classifier on feature vectors, with dropout (so RNG state matters for resume)."""

    name = "toy"
    Config = ToyConfig
    protocols = ("classify",)

    def __init__(self, cfg: ToyConfig, backbone: Any = None, class_names: list[str] | None = None) -> None:
        super().__init__(cfg, backbone, class_names or ["a", "b", "c"])
        self.net = nn.Sequential(nn.Linear(8, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.hidden, len(self.class_names)))

    def sample_spec(self) -> SampleSpec:
        return SampleSpec()

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.cfg.step_sleep:
            import time

            time.sleep(self.cfg.step_sleep)
        return {"logits": self.net(batch["features"])}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(outputs["logits"], batch["label"])
        return {"loss": ce, "ce": ce}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return [{"label": self.class_names[int(i)]} for i in self(batch)["logits"].argmax(-1)]


class ToyData(torch.utils.data.Dataset[dict[str, Any]]):
    """Learnable 3-class data: the label is the argmax of three fixed projections of x."""

    def __init__(self, size: int = 96) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.x = torch.randn(size, 8, generator=generator)
        self.y = (self.x @ torch.randn(8, 3, generator=generator)).argmax(-1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"features": self.x[index], "label": int(self.y[index]), "index": index}


def toy_config(overrides: list[str]) -> RunConfig:
    schema = RunConfig(method="toy", model=ToyConfig())
    defaults = ["train.epochs=3", "train.batch_size=16", "train.log_every=1000", "optim.lr=0.05",
                "train.device=cpu"]
    cfg: RunConfig = merge_config(schema, defaults, overrides)  # type: ignore[assignment]
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def run(run_dir: Path, overrides: list[str], resume: bool = False) -> list[dict[str, Any]]:
    cfg = toy_config(overrides)
    torch.manual_seed(cfg.train.seed)
    method = ToyMethod(cfg.model)
    return Trainer(method, cfg, ToyData(), run_dir).fit(resume=resume)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    resume = "--resume" in arguments
    run(Path(arguments[0]), [a for a in arguments[1:] if a != "--resume"], resume)
    print("done", flush=True)
