"""The ``captioned-motion`` world: the ``motion`` videos with captions, for video-text learning.

The videos are exactly those of ``motion`` with the same parameters. Each has a caption naming the
object and its motion with synonyms ("a small red disc slides to the left") and a ``transcript``: a
JSON list of K = 4 captions of the clip's quarters in time order — where the object is, how big,
which way it points, how visible — the ordered segments TVTSv2's transcript sorting learns from
(methods-video §B.10). Text-to-video retrieval uses ``text``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from chronoclip.data.worlds import animation
from chronoclip.data.worlds.base import World, write_world
from chronoclip.data.worlds.motion import MotionParams, answer, clips, write_clip
from chronoclip.data.worlds.universe import Thing, describe

log = logging.getLogger(__name__)

#: Number of ordered segment captions per clip (K).
SEGMENTS = 4
_PARTICIPLE_TEMPLATES = ("a video of {thing} {motion}", "{thing} is {motion}", "a clip of {thing} {motion}",
                         "there is {thing} {motion}")
_VERB_TEMPLATES = ("{thing} {motion}", "in this video {thing} {motion}")
#: Screen directions in 45-degree steps, anticlockwise from "right".
DIRECTIONS: tuple[str, ...] = ("right", "up right", "up", "up left", "left", "down left", "down", "down right")
#: On-screen direction (radians, anticlockwise from "right") of the tip of an asymmetric shape drawn at
#: angle 0: the heart's point is at the bottom, the crescent's horns open to the right.
TIP_ANGLE: dict[str, float] = {"heart": -np.pi / 2, "crescent": 0.0}


def heading(thing: Thing) -> str | None:
    """Which way an asymmetric shape points on screen (one of eight directions, e.g. ``"up left"``);
    ``None`` for shapes without a tip (see :data:`TIP_ANGLE`)."""
    if thing.shape not in TIP_ANGLE:
        return None
    direction = (thing.angle + TIP_ANGLE[thing.shape]) % (2 * np.pi)
    return DIRECTIONS[round(direction / (np.pi / 4)) % len(DIRECTIONS)]


def state_caption(thing: Thing) -> str:
    """What one frame shows: size, colour, shape, position, then heading and visibility where they apply."""
    words = [describe(thing)]
    pointing = heading(thing)
    if pointing is not None:
        words.append(f"pointing {pointing}")
    text = " ".join(words)
    if thing.opacity < 0.3:
        return f"{text}, barely visible"
    if thing.opacity < 0.75:
        return f"{text}, half visible"
    return text


def segment_captions(things: animation.Trajectory, count: int = SEGMENTS) -> list[str]:
    """One caption per time segment (the object at each segment's middle frame), in time order."""
    return [state_caption(things[(2 * k + 1) * len(things) // (2 * count)]) for k in range(count)]


def caption(first: Thing, motion: animation.MotionClass, rng: np.random.Generator) -> str:
    """A caption of a clip from its first frame's object and its motion, with synonyms and templates."""
    thing = describe(first, rng, with_position=False)
    if rng.random() < 0.5:
        return str(rng.choice(_VERB_TEMPLATES)).format(thing=thing, motion=str(rng.choice(motion.verbs)))
    return str(rng.choice(_PARTICIPLE_TEMPLATES)).format(thing=thing, motion=str(rng.choice(motion.participles)))


def generate(out: Path, params: MotionParams) -> Path:
    """Write the ``motion`` videos and a manifest with ``text`` captions and ordered ``transcript`` segments."""
    rng = np.random.default_rng([params.seed, 1])  # wording only: the videos follow `motion` exactly
    records = []
    for clip in clips(params):
        records.append({"path": write_clip(out, clip, params), "label": clip.motion.label, "split": clip.split,
                        "text": caption(clip.things[0], clip.motion, rng), "kind": clip.motion.kind,
                        "transcript": json.dumps(segment_captions(clip.things))})
    log.info("captioned-motion: wrote %d videos to %s", len(records), out)
    return write_world(out, "captioned-motion", params, records, {**answer(), "segments": SEGMENTS})


WORLD = World("captioned-motion", MotionParams, generate,
              "the motion videos with captions and 4 ordered segment captions, for video-text learning")
