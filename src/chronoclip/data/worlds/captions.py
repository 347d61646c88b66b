"""The ``captions`` world: captioned still images of the universe in the source style.

The pretraining data of ``tiny-world``: one or two objects per image, captions that name shape (with
synonyms), colour, size and position, so a CLIP trained on it learns the universe's vocabulary. Only
the source style is used; the shifted styles are left for domain adaptation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import SHAPES, STYLES, describe, random_thing, render_scene
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

_ONE = ("{a}", "a photo of {a}", "there is {a}", "an image of {a}", "{a} on a grey background")
_TWO = ("{a} and {b}", "{a} next to {b}", "a photo of {a} and {b}", "there is {a} and {b}")


@dataclass
class CaptionsParams(WorldParams):
    """Parameters of the captions world.

    Attributes:
        n: number of images.
        size: image side in pixels.
        two_objects: fraction of images with a second object.
    """

    n: int = 2000
    size: int = 32
    two_objects: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.size < 8 or not 0 <= self.two_objects <= 1:
            raise ValueError(f"need n >= 1, size >= 8 and two_objects in [0, 1]; got {self}")


def generate(out: Path, params: CaptionsParams) -> Path:
    """Write ``images/NNNNN.png`` and a manifest (path, text, split, shape, colour of the first object)."""
    rng = np.random.default_rng(params.seed)
    splits = assign_splits(params.n, params.splits, rng)
    records = []
    for index in range(params.n):
        things = [random_thing(rng)]
        if rng.random() < params.two_objects:
            things.append(random_thing(rng))
        image = render_scene(things, params.size, STYLES["source"], rng)
        template = str(rng.choice(_TWO if len(things) == 2 else _ONE))
        text = template.format(a=describe(things[0], rng), b=describe(things[-1], rng))
        path = out / "images" / f"{index:05d}.png"
        write_png(path, image)
        records.append({"path": path, "text": text, "split": splits[index], "shape": things[0].shape,
                        "colour": things[0].colour, "objects": len(things)})
    log.info("captions: wrote %d images to %s", len(records), out)
    return write_world(out, "captions", params, records, {"shapes": list(SHAPES), "style": "source"})


WORLD = World("captions", CaptionsParams, generate, "captioned still images in the source style (CLIP pretraining)")
