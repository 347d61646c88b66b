"""The ``motion`` world: short videos whose classes differ in temporal order or in appearance.

Eight classes are four order-only pairs (see :mod:`chronoclip.data.worlds.animation`): any model
that ignores frame order — a frame average of an image model — is at chance within a pair, a
temporal model can tell them apart. Two more classes differ in what is seen. This is the world
DiST must win and ``frame-probe`` must lose: a frame-order-invariant model tops out at
``answer["frame_average_ceiling_top1"]`` (60 % with the default classes).

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
    """Parameters of the ``motion`` and ``captioned-motion`` worlds.

    Attributes:
        n: videos per class (10 classes).
        size: frame side in pixels (even: the videos are yuv420p).
        frames: frames per video.
        fps: frame rate of the files.
        noise: standard deviation of per-pixel Gaussian noise added to every frame, as a fraction of 255.
    """

    n: int = 24
    size: int = 64
    frames: int = 16
    fps: float = 8.0
    noise: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.frames < 4 or self.size < 8 or self.size % 2 or self.fps <= 0 or self.noise < 0:
            raise ValueError(f"need n >= 1, frames >= 4, an even size >= 8, fps > 0 and noise >= 0; got {self}")


@dataclass(frozen=True)
class Clip:
    """One generated video.

    Attributes:
        index: position in the world (the file is ``videos/{index:05d}.mp4``).
        motion: its class.
        things: the object of every frame.
        frames: ``uint8 [T, size, size, 3]`` RGB.
        split: ``train`` / ``val`` / ``test``.
    """

    index: int
    motion: animation.MotionClass
    things: animation.Trajectory
    frames: np.ndarray
    split: str

    @property
    def filename(self) -> str:
        """Path of the video relative to the world's folder."""
        return f"videos/{self.index:05d}.mp4"


def clips(params: MotionParams) -> Iterator[Clip]:
    """Every clip of the world, classes interleaved; splits are stratified (each class is split with
    the world's fractions)."""
    rng = np.random.default_rng(params.seed)
    splits = {c.label: assign_splits(params.n, params.splits, rng) for c in animation.CLASSES}
    index = 0
    for repeat in range(params.n):
        for motion in animation.CLASSES:
            things = animation.trajectory(motion.label, rng, params.frames)
            frames = animation.render_clip(things, params.size, rng, params.noise)
            yield Clip(index, motion, things, frames, splits[motion.label][repeat])
            index += 1


def answer() -> dict[str, Any]:
    """The known structure: the order-only pairs, the appearance classes, and the best top-1 (%) a
    frame-order-invariant model can expect (chance within each pair, perfect elsewhere)."""
    order = [c for c in animation.CLASSES if c.kind == "order"]
    appearance = [c.label for c in animation.CLASSES if c.kind == "appearance"]
    return {
        "order_pairs": [[c.label, c.partner] for c in order if c.label in animation.FORWARD],
        "order_classes": [c.label for c in order],
        "appearance_classes": appearance,
        "order_pair_chance_top1": 50.0,
        "frame_average_ceiling_top1": 100.0 * (0.5 * len(order) + len(appearance)) / len(animation.CLASSES),
    }


def write_clip(out: Path, clip: Clip, params: MotionParams) -> Path:
    """Encode one clip under ``out`` (MPEG-4: byte-reproducible, see :mod:`chronoclip.io.writers`)."""
    path = out / clip.filename
    write_video(path, clip.frames, params.fps, codec="mpeg4")
    return path


def generate(out: Path, params: MotionParams) -> Path:
    """Write ``videos/NNNNN.mp4`` and the manifest (path, label, split, text, kind)."""
    records = []
    for clip in clips(params):
        text = f"{describe(clip.things[0], with_position=False)} {clip.motion.participles[0]}"
        records.append({"path": write_clip(out, clip, params), "label": clip.motion.label, "split": clip.split,
                        "text": text, "kind": clip.motion.kind})
    log.info("motion: wrote %d videos to %s", len(records), out)
    return write_world(out, "motion", params, records, answer())


WORLD = World("motion", MotionParams, generate,
              "videos whose classes differ only in frame order (pairs) or in appearance")
