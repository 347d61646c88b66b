"""The ``motion`` world: short videos whose classes differ in temporal order or in appearance.

Half the classes are order-only pairs (see :mod:`chronoclip.data.worlds.animation`): a frame-average
of any image model is at chance on them, a temporal model can solve them. The other classes differ
in what is seen. This is the world DiST must win and ``frame-probe`` must lose.

Example:
    >>> from chronoclip.data.worlds import make_world     # doctest: +SKIP
    >>> make_world("motion", "data/motion", seed=0, n=12)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chronoclip.data.worlds import animation
from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import describe
from chronoclip.io.writers import write_video

log = logging.getLogger(__name__)


@dataclass
class MotionParams(WorldParams):
    """Parameters of the motion worlds.

    Attributes:
        n: videos per class.
        size: frame side in pixels (even).
        frames: frames per video.
        fps: frame rate of the files.
        noise: per-pixel noise (fraction of 255) added to every frame.
    """

    n: int = 12
    size: int = 64
    frames: int = 16
    fps: float = 8.0
    noise: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.frames < 2 or self.size < 8 or self.size % 2:
            raise ValueError(f"need n >= 1, frames >= 2 and an even size >= 8; got {self}")


def clips(params: MotionParams) -> Iterator[tuple[int, animation.MotionClass, animation.Trajectory, np.ndarray, str]]:
    """Every clip of the world: ``(index, class, trajectory, frames uint8 [T,S,S,3], split)``.

    Splits are stratified: each class is split with the world's fractions.
    """
    rng = np.random.default_rng(params.seed)
    splits = {c.label: assign_splits(params.n, params.splits, rng) for c in animation.CLASSES}
    index = 0
    for repeat in range(params.n):
        for motion in animation.CLASSES:
            things = animation.trajectory(motion.label, rng, params.frames)
            frames = animation.render_clip(things, params.size, rng, params.noise)
            yield index, motion, things, frames, splits[motion.label][repeat]
            index += 1


def answer() -> dict[str, Any]:
    """The known structure: which classes are order-only pairs and which differ in appearance."""
    return {
        "order_pairs": [[c.label, c.partner] for c in animation.CLASSES if c.kind == "order" and c.label in animation.FORWARD],
        "order_classes": [c.label for c in animation.CLASSES if c.kind == "order"],
        "appearance_classes": [c.label for c in animation.CLASSES if c.kind == "appearance"],
        "order_pair_chance_top1": 50.0,
    }


def generate(out: Path, params: MotionParams) -> Path:
    """Write ``videos/NNNNN.mp4`` and the manifest (path, label, split, text, kind)."""
    records = []
    for index, motion, things, frames, split in clips(params):
        path = out / "videos" / f"{index:05d}.mp4"
        write_video(path, frames, params.fps, codec="mpeg4")
        records.append({"path": path, "label": motion.label, "split": split, "kind": motion.kind,
                        "text": f"{describe(things[0], with_position=False)} {motion.phrases[0]}"})
    log.info("motion: wrote %d videos to %s", len(records), out)
    return write_world(out, "motion", params, records, answer())


WORLD = World("motion", MotionParams, generate,
              "videos whose classes differ only in frame order (pairs) or in appearance")
