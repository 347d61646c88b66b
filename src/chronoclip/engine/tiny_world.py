"""Rebuild the shipped ``tiny-world`` preset: captions world → ``clip`` run → exported Hugging Face folder.

The recipe is ``chronoclip/configs/tiny-world.yaml``: a ``world`` section (the ``captions`` world's seed
and parameters) and a ``run`` section (``train`` / ``optim`` / ``schedule`` / ``model`` of the
``clip`` run, from the random-init ``tiny-world-init`` architecture). The exported folder's
``chronoclip.json`` records the recipe, the training time, the run's metrics and a ``check``: zero-shot
shape+colour top1 on a fixed set of fresh images, which the tests recompute from the shipped weights.

Run: ``chronoclip backbone build-tiny-world`` (``make tiny-world``).
"""

from __future__ import annotations

import logging
import platform
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers
import yaml

from chronoclip.backbones.export import export_backbone
from chronoclip.backbones.presets import WEIGHTS_DIR
from chronoclip.config import read_yaml
from chronoclip.data.worlds import make_world
from chronoclip.engine.runs import train
from chronoclip.eval.worldclip import universe_zero_shot

log = logging.getLogger(__name__)

#: The fixed set the ``check`` figure is measured on.
CHECK = {"n": 200, "seed": 7}
DESCRIPTION = ("small CLIP pretrained by chronoclip on its synthetic universe (48 px, patch 8, width 128); "
               "the embedded default")


def recipe_path() -> Path:
    """The packaged recipe YAML."""
    return Path(str(resources.files("chronoclip") / "configs" / "tiny-world.yaml"))


def build_tiny_world(work: str | Path, out: str | Path = WEIGHTS_DIR / "tiny-world",
                     overrides: list[str] | None = None) -> dict[str, Any]:
    """Write the world, train ``clip`` on it, export the backbone to ``out``; returns the provenance.

    Args:
        work: folder for the world and the run (``work/captions``, ``work/run``); an existing run there
            is resumed.
        out: the preset folder to (re)write.
        overrides: ``key=value`` overrides of the run section (for experiments; the shipped preset uses none).
    """
    work = Path(work)
    recipe = read_yaml(recipe_path())
    world = recipe["world"]
    data = make_world("captions", work / "captions", seed=int(world["seed"]), **world.get("params", {}))
    run_config = work / "recipe-run.yaml"
    run_config.parent.mkdir(parents=True, exist_ok=True)
    run_config.write_text(yaml.safe_dump(recipe["run"], sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    run = train("clip", data, work / "run", backbone="tiny-world-init", config=run_config,
                overrides=overrides or [], resume=(work / "run" / "config.yaml").is_file())
    seconds = time.perf_counter() - started
    check = universe_zero_shot(run.method.backbone.cpu(), styles=("source",), **CHECK)["source"]
    provenance = {
        "command": "chronoclip backbone build-tiny-world", "recipe": recipe, "overrides": overrides or [],
        "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(), "machine": platform.machine(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "metrics": {k: v for k, v in run.metrics.items() if isinstance(v, float)},
        "check": {**CHECK, "source_shape+colour": check["shape+colour"], "source_shape": check["shape"],
                  "source_colour": check["colour"]},
    }
    export_backbone(run.method.backbone, out, DESCRIPTION, templates="world", provenance=provenance)
    log.info("tiny-world: trained in %.0f s; zero-shot shape+colour %.1f%% on the check set; wrote %s",
             seconds, check["shape+colour"], out)
    return provenance
