"""Short animations of one universe object, shared by the ``motion`` and ``captioned-motion`` worlds.

A clip is a *trajectory* — the :class:`~chronoclip.data.worlds.universe.Thing` of every frame — drawn
over one still source-style background. Classes come in two kinds:

- **order-only** pairs — ``moving right`` / ``moving left``, ``growing`` / ``shrinking``,
  ``rotating anticlockwise`` / ``rotating clockwise``, ``fading in`` / ``fading out``: a clip of the
  second class of a pair is a clip of the first, drawn from the same distribution, with its frames
  reversed. Both classes therefore have the same distribution of frame *sets*, and any model that
  ignores frame order (a frame average) is at chance between them;
- **appearance** classes — ``a bouncing star`` / ``a bouncing ring``: what is seen differs; the
  motion (hops up and down) reads the same forwards and backwards.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> things = trajectory("moving left", rng, frames=8)
    >>> things[0].x > things[-1].x
    True
    >>> render_clip(things, 32, rng).shape
    (8, 32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chronoclip.data.worlds.universe import (
    COLOURS,
    SHAPES,
    SIZES,
    STYLES,
    Thing,
    random_angle,
    render_background,
    render_scene,
)

#: Shapes without rotational symmetry: their rotation is visible and its direction unambiguous.
ASYMMETRIC_SHAPES: tuple[str, ...] = ("crescent", "heart")
#: Shapes reserved for the appearance classes; the order-only classes never show them.
APPEARANCE_SHAPES: tuple[str, ...] = ("star", "ring")
#: Shapes the order-only classes draw from.
MOVING_SHAPES: tuple[str, ...] = tuple(s for s in SHAPES if s not in APPEARANCE_SHAPES)

#: The object of every frame of one clip, in time order.
Trajectory = list[Thing]


@dataclass(frozen=True)
class MotionClass:
    """One class of the motion worlds.

    Attributes:
        label: the class name (meaningful text: DiST classifies against its text embedding).
        kind: ``order`` (differs from ``partner`` only in frame order) or ``appearance``.
        partner: for an order-only class, the class that is its time reversal; ``None`` otherwise.
        participles: "-ing" phrases for the motion, for captions ("sliding to the left"); the first
            is canonical.
        verbs: third-person phrases for the same motion ("slides to the left"), same order.
    """

    label: str
    kind: str
    partner: str | None
    participles: tuple[str, ...]
    verbs: tuple[str, ...]


CLASSES: tuple[MotionClass, ...] = (
    MotionClass("moving right", "order", "moving left",
                ("moving to the right", "sliding to the right", "moving right"),
                ("moves to the right", "slides to the right", "moves right")),
    MotionClass("moving left", "order", "moving right",
                ("moving to the left", "sliding to the left", "moving left"),
                ("moves to the left", "slides to the left", "moves left")),
    MotionClass("growing", "order", "shrinking",
                ("growing", "getting bigger", "expanding"), ("grows", "gets bigger", "expands")),
    MotionClass("shrinking", "order", "growing",
                ("shrinking", "getting smaller", "contracting"), ("shrinks", "gets smaller", "contracts")),
    MotionClass("rotating anticlockwise", "order", "rotating clockwise",
                ("rotating anticlockwise", "turning anticlockwise", "spinning counterclockwise"),
                ("rotates anticlockwise", "turns anticlockwise", "spins counterclockwise")),
    MotionClass("rotating clockwise", "order", "rotating anticlockwise",
                ("rotating clockwise", "turning clockwise", "spinning clockwise"),
                ("rotates clockwise", "turns clockwise", "spins clockwise")),
    MotionClass("fading in", "order", "fading out",
                ("fading in", "appearing", "slowly appearing"), ("fades in", "appears", "slowly appears")),
    MotionClass("fading out", "order", "fading in",
                ("fading out", "disappearing", "slowly disappearing"),
                ("fades out", "disappears", "slowly disappears")),
    MotionClass("a bouncing star", "appearance", None,
                ("bouncing", "hopping up and down", "bouncing up and down"),
                ("bounces", "hops up and down", "bounces up and down")),
    MotionClass("a bouncing ring", "appearance", None,
                ("bouncing", "hopping up and down", "bouncing up and down"),
                ("bounces", "hops up and down", "bounces up and down")),
)
#: The classes by label.
BY_LABEL: dict[str, MotionClass] = {c.label: c for c in CLASSES}


def _colour(rng: np.random.Generator) -> str:
    return str(rng.choice(list(COLOURS)))


def _moving_right(rng: np.random.Generator, frames: int) -> Trajectory:
    # Start and end are far enough apart that the first quarter is "on the left", the last "on the right".
    size = SIZES[str(rng.choice(["small", "medium"]))]
    start, end, y = rng.uniform(0.2, 0.3), rng.uniform(0.7, 0.8), rng.uniform(0.3, 0.7)
    thing = Thing(str(rng.choice(MOVING_SHAPES)), _colour(rng), size, float(start), float(y), random_angle(rng))
    return [thing.moved(x=float(x)) for x in np.linspace(start, end, frames)]


def _growing(rng: np.random.Generator, frames: int) -> Trajectory:
    # From below "small" to above "large" (see universe.SIZES), so the size words change on the way.
    small, large = rng.uniform(0.12, 0.2), rng.uniform(0.42, 0.55)
    thing = Thing(str(rng.choice(MOVING_SHAPES)), _colour(rng), float(small), float(rng.uniform(0.4, 0.6)),
                  float(rng.uniform(0.4, 0.6)), random_angle(rng))
    return [thing.moved(size=float(s)) for s in np.linspace(small, large, frames)]


def _rotating_anticlockwise(rng: np.random.Generator, frames: int) -> Trajectory:
    # A larger `angle` turns the drawing anticlockwise on screen (see universe.shape_coverage). Half to
    # three quarters of a turn: the direction is unambiguous even between every other frame of 8.
    start, turn = random_angle(rng), rng.uniform(np.pi, 1.5 * np.pi)
    thing = Thing(str(rng.choice(ASYMMETRIC_SHAPES)), _colour(rng), SIZES["large"],
                  float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)), start)
    return [thing.moved(angle=float(a)) for a in np.linspace(start, start + turn, frames)]


def _fading_in(rng: np.random.Generator, frames: int) -> Trajectory:
    low, high = rng.uniform(0.0, 0.1), rng.uniform(0.9, 1.0)
    thing = Thing(str(rng.choice(MOVING_SHAPES)), _colour(rng), SIZES[str(rng.choice(list(SIZES)))],
                  float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65)), random_angle(rng))
    return [thing.moved(opacity=float(o)) for o in np.linspace(low, high, frames)]


def _bouncing(shape: str) -> Callable[[np.random.Generator, int], Trajectory]:
    """One or two hops from a floor and back; the height profile is a palindrome in time."""
    def generate(rng: np.random.Generator, frames: int) -> Trajectory:
        floor, height, hops = rng.uniform(0.62, 0.7), rng.uniform(0.2, 0.3), int(rng.integers(1, 3))
        thing = Thing(shape, _colour(rng), SIZES["medium"], float(rng.uniform(0.35, 0.65)), float(floor),
                      random_angle(rng))
        phase = np.pi * hops * np.arange(frames) / max(frames - 1, 1)
        return [thing.moved(y=float(floor - height * abs(np.sin(p)))) for p in phase]
    return generate


#: Generators of the classes drawn forwards; the partners of the order-only ones are their reversals.
FORWARD: dict[str, Callable[[np.random.Generator, int], Trajectory]] = {
    "moving right": _moving_right,
    "growing": _growing,
    "rotating anticlockwise": _rotating_anticlockwise,
    "fading in": _fading_in,
    "a bouncing star": _bouncing("star"),
    "a bouncing ring": _bouncing("ring"),
}


def trajectory(label: str, rng: np.random.Generator, frames: int) -> Trajectory:
    """The object of each of ``frames`` frames of one clip of class ``label``.

    A reversed partner draws its forward class with the same ``rng`` calls and reverses the list, so
    ``trajectory(partner, rng_a) == trajectory(label, rng_b)[::-1]`` when both generators are in the
    same state.
    """
    if label in FORWARD:
        return FORWARD[label](rng, frames)
    partner = BY_LABEL[label].partner if label in BY_LABEL else None
    if partner is None or partner not in FORWARD:
        raise ValueError(f"unknown motion class '{label}'; known: {', '.join(BY_LABEL)}")
    return FORWARD[partner](rng, frames)[::-1]


def render_clip(things: Trajectory, size: int, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """Draw a trajectory over one still source-style background.

    Args:
        things: the object of every frame.
        size: frame side in pixels.
        rng: drives the background and the pixel noise (drawn independently per frame, so it has no
            time direction).
        noise: standard deviation of per-pixel Gaussian noise, as a fraction of 255.

    Returns:
        ``uint8 [T, size, size, 3]`` RGB frames.
    """
    style = STYLES["source"]
    background = render_background(size, style, rng)
    clip = np.stack([render_scene([thing], size, style, rng, background=background) for thing in things])
    if noise:
        jitter = rng.normal(0, noise * 255, size=clip.shape)
        clip = np.clip(np.rint(clip + jitter), 0, 255).astype(np.uint8)
    return clip
