"""The ``captions`` world: captioned still images of the universe in the source style.

The pretraining data of ``tiny-world``: one or two non-overlapping objects per image, captions that
name every object's size, colour, shape (with synonyms) and position, so a CLIP trained on it learns
the universe's vocabulary. Only the source style is used; the shifted styles are left for domain
adaptation. The ``shape`` and ``colour`` columns (of the first object named) and, for one-object
images, ``label`` (``"<colour> <shape>"``) serve zero-shot evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import COLOURS, SHAPES, STYLES, Thing, describe, random_thing, render_scene
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

_ONE = ("{a}", "a photo of {a}", "there is {a}", "an image of {a}", "{a} on a grey background",
        "a picture of {a} on a plain background")
_TWO = ("{a} and {b}", "{a} next to {b}", "a photo of {a} and {b}", "there is {a} and {b}")
#: Draws of a second object before an image keeps only its first (the objects must not overlap).
_PLACEMENT_TRIES = 20


@dataclass
class CaptionsParams(WorldParams):
    """Parameters of the ``captions`` world.

    Attributes:
        n: number of images.
        size: image side in pixels.
        two_objects: fraction of images that try to place a second object beside the first.
        drop_position, drop_size: probability that an object's phrase leaves out its position / its size
            (captions name the same scene in varied detail, as real alt-texts do; colour and shape are
            always named).
    """

    n: int = 2000
    size: int = 64
    two_objects: float = 0.3
    drop_position: float = 0.5
    drop_size: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        fractions = (self.two_objects, self.drop_position, self.drop_size)
        if self.n < 1 or self.size < 8 or not all(0 <= f <= 1 for f in fractions):
            raise ValueError(f"need n >= 1, size >= 8 and two_objects, drop_position, drop_size in [0, 1]; "
                             f"got {self}")


def apart(a: Thing, b: Thing, gap: float = 0.02) -> bool:
    """Whether two objects' discs (diameter ``size``) are separated by at least ``gap`` (frame fractions)."""
    return float(np.hypot(a.x - b.x, a.y - b.y)) > (a.size + b.size) / 2 + gap


def scene(rng: np.random.Generator, two_objects: float) -> list[Thing]:
    """One random object, and with probability ``two_objects`` a second one that does not overlap it."""
    first = random_thing(rng)
    if rng.random() >= two_objects:
        return [first]
    for _ in range(_PLACEMENT_TRIES):
        second = random_thing(rng)
        if apart(first, second):
            return [first, second]
    return [first]


def caption(things: list[Thing], rng: np.random.Generator, drop_position: float = 0.0,
            drop_size: float = 0.0) -> str:
    """A caption naming every object (colour, shape synonym, and unless dropped size and position) from a
    random template."""
    phrases = [describe(thing, rng, with_position=rng.random() >= drop_position, with_size=rng.random() >= drop_size)
               for thing in things]
    if len(phrases) == 1:
        return str(rng.choice(_ONE)).format(a=phrases[0])
    return str(rng.choice(_TWO)).format(a=phrases[0], b=phrases[1])


def generate(out: Path, params: CaptionsParams) -> Path:
    """Write ``images/NNNNN.png`` (``uint8 [size, size, 3]``) and a manifest: path, text, split, label
    (``"red circle"``; empty for two-object images, which have no single class), and extras ``shape`` and
    ``colour`` (of the first object named) and ``objects`` (1 or 2)."""
    rng = np.random.default_rng(params.seed)
    splits = assign_splits(params.n, params.splits, rng)
    records = []
    for index in range(params.n):
        things = scene(rng, params.two_objects)
        path = out / "images" / f"{index:05d}.png"
        write_png(path, render_scene(things, params.size, STYLES["source"], rng))
        label = f"{things[0].colour} {things[0].shape}" if len(things) == 1 else None
        text = caption(things, rng, params.drop_position, params.drop_size)
        records.append({"path": path, "text": text, "split": splits[index], "label": label,
                        "shape": things[0].shape, "colour": things[0].colour, "objects": len(things)})
    log.info("captions: wrote %d images to %s", len(records), out)
    return write_world(out, "captions", params, records,
                       {"shapes": list(SHAPES), "colours": list(COLOURS), "style": "source"})


WORLD = World("captions", CaptionsParams, generate, "captioned still images in the source style (CLIP pretraining)")
