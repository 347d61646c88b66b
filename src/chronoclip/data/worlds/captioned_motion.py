"""The ``captioned-motion`` world: the ``motion`` videos with captions, for video-text pretraining.

Each video has a caption naming the object and its motion with synonyms ("a small red disc slides
to the right") and a ``transcript``: a JSON list of K = 4 captions describing the clip's quarters in
time order (where the object is, how big, which way it points) — the ordered segments that TVTSv2's
transcript sorting learns from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from chronoclip.data.worlds import animation
from chronoclip.data.worlds.base import World, write_world
from chronoclip.data.worlds.motion import MotionParams, answer, clips
from chronoclip.data.worlds.universe import Thing, describe
from chronoclip.io.writers import write_video

log = logging.getLogger(__name__)

SEGMENTS = 4
_TEMPLATES = ("{thing} {motion}", "a video of {thing} {motion}", "{thing} is {motion}", "watch {thing} {motion}")
_HEADINGS = ("right", "up", "left", "down")


def heading(thing: Thing) -> str:
    """Which way an object's local +x axis points on screen (right / up / left / down)."""
    quarter = round((thing.angle % (2 * np.pi)) / (np.pi / 2)) % 4
    return _HEADINGS[quarter]


def segment_captions(things: animation.Trajectory, count: int = SEGMENTS) -> list[str]:
    """One caption per time segment (the object at each segment's middle frame), in time order."""
    bounds = np.linspace(0, len(things), count + 1)
    middles = [things[int((a + b) / 2)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [f"{describe(t)} pointing {heading(t)}" for t in middles]


def generate(out: Path, params: MotionParams) -> Path:
    """Write the videos and a manifest with ``text`` captions and ordered ``transcript`` segments."""
    rng = np.random.default_rng([params.seed, 1])  # caption wording; the videos follow `motion` exactly
    records = []
    for index, motion, things, frames, split in clips(params):
        path = out / "videos" / f"{index:05d}.mp4"
        write_video(path, frames, params.fps, codec="mpeg4")
        template = str(rng.choice(_TEMPLATES))
        caption = template.format(thing=describe(things[0], rng, with_position=False),
                                  motion=str(rng.choice(motion.phrases)))
        records.append({"path": path, "label": motion.label, "split": split, "kind": motion.kind, "text": caption,
                        "transcript": json.dumps(segment_captions(things))})
    log.info("captioned-motion: wrote %d videos to %s", len(records), out)
    return write_world(out, "captioned-motion", params, records, {**answer(), "segments": SEGMENTS})


WORLD = World("captioned-motion", MotionParams, generate,
              "the motion videos with captions and 4 ordered segment captions, for video-text learning")
