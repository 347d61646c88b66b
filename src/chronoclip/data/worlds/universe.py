"""One synthetic universe behind every world (DESIGN §7).

A single vocabulary — shapes, colours, sizes, positions, backgrounds, rendering styles and a sound
per shape — so that every world (``captions``, ``growth``, ``motion``, ``captioned-motion``,
``domains``, ``audiovisual``) is a scene of the same universe and its captions use the same words.
A CLIP pretrained on captioned stills of this universe (``tiny-world``) is then a meaningful
foundation model for all of them.

Rendering is plain NumPy: shapes are soft-edged implicit masks evaluated on the pixel grid, so an
image depends only on its parameters and the random generator passed in (deterministic from a seed).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> thing = Thing("circle", "red", size=0.4, x=0.5, y=0.5)
    >>> image = render_scene([thing], 64, STYLES["source"], rng)
    >>> image.shape, image.dtype
    ((64, 64, 3), dtype('uint8'))
    >>> describe(thing)
    'a large red circle in the centre'
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: Object shapes; the order is the class index order wherever shapes are classes.
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "diamond", "cross", "star", "ring", "hexagon", "crescent", "heart",
)

#: Colour words and their RGB values in [0, 1].
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.16, 0.16),
    "green": (0.18, 0.70, 0.25),
    "blue": (0.18, 0.33, 0.88),
    "yellow": (0.95, 0.85, 0.15),
    "purple": (0.58, 0.25, 0.78),
    "orange": (0.98, 0.55, 0.10),
    "white": (0.96, 0.96, 0.96),
    "black": (0.08, 0.08, 0.08),
}

#: Size words and the object's diameter as a fraction of the frame side.
SIZES: dict[str, float] = {"small": 0.22, "medium": 0.32, "large": 0.44}

#: Objects stand upright, tilted by at most this many radians (17°) either way: shapes keep their names
#: (a square turned 45° would read as a diamond) and stay learnable by a small model.
ANGLE_JITTER = 0.3

#: Background patterns a style may use.
BACKGROUNDS: tuple[str, ...] = ("plain", "stripes", "dots", "checker", "noise")

#: Synonyms used to vary captions; the first entry is the canonical word.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round blob"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge"),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus sign"),
    "star": ("star", "starburst"),
    "ring": ("ring", "hoop", "donut"),
    "hexagon": ("hexagon", "six-sided tile"),
    "crescent": ("crescent", "moon"),
    "heart": ("heart", "love heart"),
}

#: Fundamental frequency (Hz) of each shape's sound, and its timbre (relative harmonic amplitudes).
SOUNDS: dict[str, tuple[float, tuple[float, ...]]] = {
    "circle": (220.0, (1.0, 0.5, 0.25)),
    "square": (262.0, (1.0, 0.0, 0.33, 0.0, 0.2)),
    "triangle": (294.0, (1.0, 0.0, 0.11, 0.0, 0.04)),
    "diamond": (330.0, (1.0, 0.7)),
    "cross": (349.0, (1.0, 0.3, 0.3, 0.3)),
    "star": (392.0, (1.0, 0.6, 0.5, 0.4, 0.3, 0.2)),
    "ring": (440.0, (1.0, 0.0, 0.0, 0.5)),
    "hexagon": (494.0, (1.0, 0.25, 0.6)),
    "crescent": (523.0, (1.0, 0.8, 0.1)),
    "heart": (587.0, (1.0, 0.1, 0.4, 0.1)),
}


@dataclass(frozen=True)
class Style:
    """How a scene is drawn: the source style and shifted styles differ only here.

    Attributes:
        name: style name (recorded in manifests).
        background: one of :data:`BACKGROUNDS`.
        background_colour: RGB in [0, 1] of the background's base colour.
        fill: ``"solid"`` shapes, ``"outline"`` strokes or ``"dashed"`` strokes.
        hue_shift: rotation of every object colour's hue, in turns (0 = none).
        noise: standard deviation of per-pixel Gaussian noise, in [0, 1] units.
        contrast: object colours are blended toward the background by ``1 - contrast``.
    """

    name: str
    background: str = "plain"
    background_colour: tuple[float, float, float] = (0.55, 0.55, 0.55)
    fill: str = "solid"
    hue_shift: float = 0.0
    noise: float = 0.0
    contrast: float = 1.0


#: The source style (clean) and shifted styles (for domain adaptation and robustness).
STYLES: dict[str, Style] = {
    "source": Style("source"),
    "sketch": Style("sketch", background="plain", background_colour=(0.93, 0.91, 0.86), fill="dashed"),
    "textured": Style("textured", background="checker", background_colour=(0.45, 0.50, 0.40),
                      hue_shift=0.08, noise=0.04),
    "night": Style("night", background="noise", background_colour=(0.12, 0.12, 0.18), fill="outline",
                   hue_shift=-0.06, noise=0.06, contrast=0.8),
}


@dataclass(frozen=True)
class Thing:
    """One object in a scene.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: one of :data:`COLOURS`.
        size: diameter as a fraction of the frame side (see :data:`SIZES` for the named sizes).
        x, y: centre in frame coordinates, [0, 1] from the left / top.
        angle: rotation in radians (counter-clockwise on screen).
        opacity: 0 (invisible) to 1 (fully drawn).
    """

    shape: str
    colour: str
    size: float = SIZES["medium"]
    x: float = 0.5
    y: float = 0.5
    angle: float = 0.0
    opacity: float = 1.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape '{self.shape}'; known: {', '.join(SHAPES)}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour '{self.colour}'; known: {', '.join(COLOURS)}")

    def moved(self, **changes: Any) -> Thing:
        """A copy with some geometric fields changed (used to animate objects)."""
        return replace(self, **changes)


def size_word(size: float) -> str:
    """The named size closest to a diameter fraction."""
    return min(SIZES, key=lambda name: abs(SIZES[name] - size))


def position_phrase(x: float, y: float) -> str:
    """Words for where a centre lies: 'in the centre', 'on the left', 'at the top right', ..."""
    horizontal = "left" if x < 0.4 else "right" if x > 0.6 else ""
    vertical = "top" if y < 0.4 else "bottom" if y > 0.6 else ""
    if horizontal and vertical:
        return f"at the {vertical} {horizontal}"
    if horizontal:
        return f"on the {horizontal}"
    if vertical:
        return f"at the {vertical}"
    return "in the centre"


def describe(thing: Thing, rng: np.random.Generator | None = None, with_position: bool = True,
             with_size: bool = True) -> str:
    """A caption phrase for one object; with ``rng``, the shape word is drawn from its synonyms."""
    noun = SYNONYMS[thing.shape][0] if rng is None else str(rng.choice(SYNONYMS[thing.shape]))
    phrase = f"a {size_word(thing.size)} {thing.colour} {noun}" if with_size else f"a {thing.colour} {noun}"
    return f"{phrase} {position_phrase(thing.x, thing.y)}" if with_position else phrase


def random_angle(rng: np.random.Generator) -> float:
    """An upright orientation tilted uniformly by at most :data:`ANGLE_JITTER` radians."""
    return float(rng.uniform(-ANGLE_JITTER, ANGLE_JITTER))


def random_thing(rng: np.random.Generator, shapes: Sequence[str] = SHAPES,
                 colours: Sequence[str] = tuple(COLOURS), margin: float = 0.05) -> Thing:
    """An object with a random shape, colour, named size, position (kept inside the frame) and tilt."""
    size = SIZES[str(rng.choice(list(SIZES)))]
    low, high = size / 2 + margin, 1 - size / 2 - margin
    return Thing(str(rng.choice(list(shapes))), str(rng.choice(list(colours))), size,
                 float(rng.uniform(low, high)), float(rng.uniform(low, high)), random_angle(rng))


# --------------------------------------------------------------------------------------- shapes
# Each shape is a signed distance-like function of local coordinates (u, v) in units of the
# object's radius: negative inside, positive outside, roughly in radius units near the edge.

def _polygon(sides: int, rotation: float = 0.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    normals = [rotation + 2 * np.pi * (k + 0.5) / sides for k in range(sides)]
    apothem = np.cos(np.pi / sides)

    def distance(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.max([u * np.cos(a) + v * np.sin(a) for a in normals], axis=0) - apothem
    return distance


def _rhombus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Taller than wide, so it stays distinguishable from a rotated square.
    return (np.abs(u) / 0.62 + np.abs(v) - 1.0) * 0.53


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    radius, theta = np.hypot(u, v), np.arctan2(v, u)
    outline = 0.55 + 0.45 * np.abs(np.cos(2.5 * theta)) ** 3
    return radius - outline


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    arm = 0.33
    bar_h = np.maximum(np.abs(u) - 1.0, np.abs(v) - arm)
    bar_v = np.maximum(np.abs(u) - arm, np.abs(v) - 1.0)
    return np.minimum(bar_h, bar_v)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    outer = np.hypot(u, v) - 1.0
    bite = 0.8 - np.hypot(u - 0.45, v)
    return np.maximum(outer, bite)


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Two lobes (circles) over a downward-pointing square wedge; v grows downwards on screen.
    lobes = np.minimum(np.hypot(u + 0.42, v + 0.3), np.hypot(u - 0.42, v + 0.3)) - 0.5
    wedge = np.maximum(np.abs(u) + v * 0.95 - 0.55, -v - 0.3)
    return np.minimum(lobes, wedge)


SHAPE_DISTANCE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda u, v: np.hypot(u, v) - 1.0,
    "square": _polygon(4, np.pi / 4),
    "triangle": _polygon(3, np.pi / 6),
    "diamond": _rhombus,
    "cross": _cross,
    "star": _star,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.72) - 0.28,
    "hexagon": _polygon(6),
    "crescent": _crescent,
    "heart": _heart,
}


def shape_coverage(thing: Thing, side: int, fill: str = "solid") -> np.ndarray:
    """Soft coverage ``float32 [side, side]`` in [0, 1] of one object, antialiased over ~1 pixel.

    ``fill`` is ``"solid"``, ``"outline"`` (a stroke along the edge) or ``"dashed"`` (the stroke
    broken into dashes by angle).
    """
    radius = max(thing.size * side / 2, 1e-6)
    grid = (np.arange(side, dtype=np.float32) + 0.5)
    dx = (grid[None, :] - thing.x * side) / radius
    dy = (grid[:, None] - thing.y * side) / radius
    cos, sin = np.cos(thing.angle), np.sin(thing.angle)
    u, v = cos * dx - sin * dy, sin * dx + cos * dy
    distance = SHAPE_DISTANCE[thing.shape](u, v) * radius  # in pixels
    if fill != "solid":
        stroke = max(1.0, 0.12 * radius)
        distance = np.abs(distance) - stroke / 2
    coverage = np.clip(0.5 - distance, 0.0, 1.0)
    if fill == "dashed":
        dashes = np.cos(np.arctan2(dy, dx) * 8) > -0.2
        coverage = coverage * dashes
    return (coverage * thing.opacity).astype(np.float32)


# --------------------------------------------------------------------------------------- scenes

def shifted_colour(colour: str, style: Style) -> np.ndarray:
    """An object colour as drawn in a style: hue rotated by ``style.hue_shift``."""
    r, g, b = COLOURS[colour]
    if not style.hue_shift:
        return np.array((r, g, b), dtype=np.float32)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    return np.array(colorsys.hsv_to_rgb((h + style.hue_shift) % 1.0, s, v), dtype=np.float32)


def render_background(side: int, style: Style, rng: np.random.Generator) -> np.ndarray:
    """The style's background pattern, ``float32 [side, side, 3]`` in [0, 1]; random phase from ``rng``."""
    base = np.array(style.background_colour, dtype=np.float32)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    period = side / float(rng.uniform(5, 9))
    phase = float(rng.uniform(0, period))
    if style.background == "plain":
        pattern = np.zeros((side, side), np.float32)
    elif style.background == "stripes":
        pattern = 0.12 * np.sign(np.sin(2 * np.pi * (xs + ys + phase) / period))
    elif style.background == "dots":
        cell_x, cell_y = (xs + phase) % period - period / 2, (ys + phase) % period - period / 2
        pattern = 0.15 * (np.hypot(cell_x, cell_y) < period / 5)
    elif style.background == "checker":
        pattern = 0.1 * ((((xs + phase) // period) + ((ys + phase) // period)) % 2 * 2 - 1)
    elif style.background == "noise":
        coarse = rng.normal(0, 0.12, size=(side // 8 + 2, side // 8 + 2)).astype(np.float32)
        pattern = np.kron(coarse, np.ones((8, 8), np.float32))[:side, :side]
    else:
        raise ValueError(f"unknown background '{style.background}'; known: {', '.join(BACKGROUNDS)}")
    return np.clip(base[None, None, :] + pattern[..., None], 0, 1)


def render_scene(things: Sequence[Thing], side: int, style: Style, rng: np.random.Generator,
                 background: np.ndarray | None = None, brightness: float = 0.0) -> np.ndarray:
    """Draw objects (in order, later on top) over the style's background.

    Args:
        things: objects to draw.
        side: frame height and width in pixels.
        style: how to draw (background, fill, colour shift, noise, contrast).
        rng: drives the background phase and the pixel noise.
        background: a fixed ``float32 [side, side, 3]`` background (e.g. to keep it still across
            the frames of a video); drawn fresh from ``rng`` when ``None``.
        brightness: added to every pixel before noise (e.g. a global flash), in [0, 1] units.

    Returns:
        ``uint8 [side, side, 3]`` RGB image.
    """
    canvas = (render_background(side, style, rng) if background is None else background).copy()
    for thing in things:
        alpha = shape_coverage(thing, side, style.fill)[..., None]
        colour = shifted_colour(thing.colour, style)
        colour = style.contrast * colour + (1 - style.contrast) * np.asarray(style.background_colour)
        canvas = canvas * (1 - alpha) + colour[None, None, :] * alpha
    canvas = canvas + brightness
    if style.noise:
        canvas = canvas + rng.normal(0, style.noise, size=canvas.shape).astype(np.float32)
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------- sounds

def object_sound(shape: str, duration: float, sample_rate: int, amplitude: float = 0.3,
                 detune: float = 0.0) -> np.ndarray:
    """The harmonic tone of a shape: its fundamental (:data:`SOUNDS`) with its timbre.

    Args:
        shape: one of :data:`SHAPES`.
        duration: seconds.
        sample_rate: samples per second.
        amplitude: peak amplitude of the sum (the waveform is scaled to it).
        detune: relative pitch change (e.g. 0.02 = 2 % sharper), for variation within a class.

    Returns:
        ``float32 [round(duration * sample_rate)]``.
    """
    f0, harmonics = SOUNDS[shape]
    t = np.arange(round(duration * sample_rate), dtype=np.float64) / sample_rate
    wave = np.zeros_like(t)
    for k, weight in enumerate(harmonics):
        wave += weight * np.sin(2 * np.pi * f0 * (1 + detune) * (k + 1) * t)
    peak = float(np.max(np.abs(wave))) or 1.0
    return (amplitude * wave / peak).astype(np.float32)
