"""The ``growth`` world: time-lapse series of a culture growing spore → hyphae → mycelium (spec C.2, C.8).

Each series has a hidden incubation temperature θ ∈ {18, 24, 30} °C that sets its growth rate
r ∈ {0.6, 1.0, 1.4}. Developmental progress p = clip(r·t / t_max, 0, 1) drives the image; the
timestamp is the elapsed time t. The image therefore shows p but not t (ambiguous up to r), and the
note says the temperature (so r) and never the time or the stage: text is needed to read
t = p·t_max / r, while a text-only model knows r but not p (spec C.8). The branch geometry does not
depend on θ, so the picture cannot reveal the rate.

The generator follows the logic of the Funghi generator (spec C.2), written here in NumPy:

- ``spores`` spores, yellow discs whose size shrinks as max(0, 1 − 1.2p);
- spore i turns into a hyphal colony at progress h_i ∈ [0.1, 0.45): two branching trees (3 levels,
  Poisson(3) sub-branches capped at 3, each level 0.4–0.6 × as long and 0.6–1 × as wide) grow out
  of it over the next 0.2 of progress, yellow turning orange;
- the colony turns into mycelium at m_i ∈ [0.5, 0.9): a fourth branch level and three more
  4-level trees grow over the next 0.1 of progress, thicker, orange turning red.

Onsets are stratified and share one order (the first spore to germinate is the first to turn
mycelial), so the number of spores falls and the number of mycelial colonies rises almost linearly
in p, every colony finishes its hyphae before it turns mycelial (given two or more spores), and
every spore has germinated before any colony turns mycelial. The **stage** of a frame is the
dominant structure type — the largest of the counts of spores, hyphal colonies and mycelial
colonies, ties to the later stage — which makes it monotone within a series (spore until
p ≈ 0.28, hyphae until p ≈ 0.7, then mycelium). ``stage_by_progress`` gives the threshold
alternative (p < 1/3, < 2/3) for the sensitivity check of spec C.6.

All frames of a series are drawn from one random state (the culture), and structures only ever
grow: a pixel's hyphal coverage never falls as p rises.

Example:
    >>> import numpy as np
    >>> culture = make_culture(np.random.default_rng(0), spores=20)
    >>> [stage_of(culture, p) for p in (0.0, 0.5, 1.0)]
    ['spore', 'hyphae', 'mycelium']
    >>> render(culture, 0.5, 64).shape
    (64, 64, 3)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import COLOURS, STYLES, Thing, render_background, render_scene
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

#: Developmental stages, in order.
STAGES: tuple[str, ...] = ("spore", "hyphae", "mycelium")
#: Incubation temperature (°C) -> growth rate r.
RATES: dict[int, float] = {18: 0.6, 24: 1.0, 30: 1.4}
#: Rendering styles (only the Funghi-like culture for now).
GROWTH_STYLES: tuple[str, ...] = ("fungi",)
#: Progress thresholds of the alternative stage rule (``stage_by_progress``).
PROGRESS_THRESHOLDS: tuple[float, float] = (1 / 3, 2 / 3)

#: Progress ranges of the onsets: spore -> hyphae in [0.1, 0.45), hyphae -> mycelium in [0.5, 0.9).
HYPHAE_ONSETS: tuple[float, float] = (0.1, 0.45)
MYCELIUM_ONSETS: tuple[float, float] = (0.5, 0.9)
#: Progress a colony takes to grow its hyphal trees, and then its mycelium.
HYPHAE_GROWTH = 0.2
MYCELIUM_GROWTH = 0.1

_SPORE_DIAMETER = 0.07  # frame fraction at p = 0
_ROOTS = (2, 3)  # trees per colony that grow in the hyphal / mycelial phase
_LEVELS = (3, 4)  # branch levels of a hyphal / mycelial tree
_ROOT_LENGTH = 0.12  # frame fraction
_POINT_SPACING = 0.6  # pixels between the points a segment is drawn with
_INK = 1.0  # coverage per unit of splatted point weight, before saturation

_TEMPERATURE_PHRASES = ("incubated at {t} °C.", "culture incubated at {t} °C.", "plate incubated at {t} °C.")
#: Distractor sentences: no digits, no stage, colour or time words.
_DISTRACTORS = (
    "the plate was photographed from above.", "the lid stayed closed.", "no contamination was noted.",
    "humidity was kept steady.", "the agar looked smooth.", "the dish sat on the left shelf.",
    "camera focus was checked.", "a sterile loop was used.", "the incubator door was opened once.",
    "a new batch of agar was used.", "sample from the cold room.", "the lab lights were on.",
)


@dataclass
class GrowthParams(WorldParams):
    """Parameters of the ``growth`` world.

    Attributes:
        n: number of series (cultures; the world's count, like every world's ``n``); splits are assigned per
            series, never per frame.
        frames: frames per series, evenly spaced over [0, t_max_hours].
        size: image side in pixels.
        t_max_hours: the time span of every series, in hours.
        spores: spores per culture.
        temperatures: incubation temperatures (each a key of :data:`RATES`), assigned to series in
            equal shares.
        style: rendering style, one of :data:`GROWTH_STYLES`.
    """

    n: int = 60
    frames: int = 12
    size: int = 64
    t_max_hours: float = 48.0
    spores: int = 20
    temperatures: list[int] = field(default_factory=lambda: list(RATES))
    style: str = "fungi"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperatures or any(t not in RATES for t in self.temperatures):
            raise ValueError(f"temperatures must be among {sorted(RATES)}, got {self.temperatures}")
        if self.style not in GROWTH_STYLES:
            raise ValueError(f"style must be one of {GROWTH_STYLES}, got '{self.style}'")
        if self.n < 1 or self.frames < 2 or self.size < 16 or self.spores < 1 or self.t_max_hours <= 0:
            raise ValueError(f"need n >= 1, frames >= 2, size >= 16, spores >= 1 and t_max_hours > 0; "
                             f"got {self}")


@dataclass(frozen=True)
class Culture:
    """The random state of one series: spores, their onsets and the branch geometry of every colony.

    Attributes:
        spores: ``float [S, 2]`` spore centres (x, y), frame fractions.
        hyphae_onset: ``float [S]`` progress at which each spore becomes a hyphal colony.
        mycelium_onset: ``float [S]`` progress at which that colony becomes mycelium.
        starts, ends: ``float [M, 2]`` end points of every branch segment, frame fractions.
        widths: ``float [M]`` relative segment widths (1 for the first level).
        colony: ``int [M]`` the spore each segment grows from.
        mycelial: ``bool [M]`` whether the segment grows in the mycelial phase (else the hyphal one).
        birth, span: ``float [M]`` a segment grows while its phase's clock runs from ``birth`` to
            ``birth + span`` (clocks run 0 -> 1, see :func:`clocks`).
    """

    spores: np.ndarray
    hyphae_onset: np.ndarray
    mycelium_onset: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    widths: np.ndarray
    colony: np.ndarray
    mycelial: np.ndarray
    birth: np.ndarray
    span: np.ndarray


def _trees(rng: np.random.Generator, origins: np.ndarray, colony: np.ndarray, levels: int) -> dict[str, np.ndarray]:
    """Segments of one branching tree per origin ``[R, 2]``, drawn level by level for all trees at once.

    Each level's segments sprout min(3, Poisson(3)) children at their ends, turned by up to ±1.2 rad,
    0.4–0.6 × as long and 0.6–1 × as wide. Returns ``starts``, ``ends`` ``[M, 2]``, ``widths``,
    ``colony`` and ``level`` ``[M]``.
    """
    count = len(origins)
    angle = rng.uniform(0, 2 * np.pi, count)
    length = _ROOT_LENGTH * np.clip(rng.normal(1.0, 0.2, count), 0.5, 1.5)
    start, width, owner = origins, np.ones(count), colony
    parts: list[dict[str, np.ndarray]] = []
    for level in range(levels):
        end = start + length[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        parts.append({"starts": start, "ends": end, "widths": width, "colony": owner,
                      "level": np.full(len(start), level)})
        children = np.repeat(np.arange(len(start)), np.minimum(rng.poisson(3, len(start)), 3))
        start, owner = end[children], owner[children]
        angle = angle[children] + rng.uniform(-1.2, 1.2, len(children))
        length = length[children] * rng.uniform(0.4, 0.6, len(children))
        width = width[children] * rng.uniform(0.6, 1.0, len(children))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def make_culture(rng: np.random.Generator, spores: int) -> Culture:
    """Draw one culture: spore positions, stratified onsets in one shared order, and its trees.

    Hyphal trees grow their first three levels in the hyphal phase and a fourth in the mycelial
    phase; the mycelial phase also grows extra 4-level trees from the spore.
    """
    positions = rng.uniform(0.1, 0.9, size=(spores, 2))
    order = rng.permutation(spores)
    low, high = HYPHAE_ONSETS
    hyphae = low + (high - low) * (order + rng.uniform(0, 1, spores)) / spores
    low, high = MYCELIUM_ONSETS
    mycelium = low + (high - low) * (order + rng.uniform(0, 1, spores)) / spores
    (hyphal_roots, mycelial_roots), (hyphal_levels, mycelial_levels) = _ROOTS, _LEVELS
    owner = np.repeat(np.arange(spores), hyphal_roots)
    hyphal = _trees(rng, positions[owner], owner, mycelial_levels)
    late = hyphal["level"] >= hyphal_levels
    hyphal |= {"mycelial": late, "birth": np.where(late, 0.0, hyphal["level"] / hyphal_levels),
               "span": np.where(late, 1 / mycelial_levels, 1 / hyphal_levels)}
    owner = np.repeat(np.arange(spores), mycelial_roots)
    extra = _trees(rng, positions[owner], owner, mycelial_levels)
    extra |= {"mycelial": np.ones(len(extra["level"]), bool), "birth": extra["level"] / mycelial_levels,
              "span": np.full(len(extra["level"]), 1 / mycelial_levels)}
    parts = {key: np.concatenate([hyphal[key], extra[key]]) for key in hyphal if key != "level"}
    return Culture(positions, hyphae, mycelium, **parts)


def counts(culture: Culture, progress: float) -> dict[str, int]:
    """How many spores are still spores, hyphal colonies or mycelial colonies at ``progress``."""
    hyphal = progress >= culture.hyphae_onset
    mycelial = progress >= culture.mycelium_onset
    return {"spore": int((~hyphal).sum()), "hyphae": int((hyphal & ~mycelial).sum()),
            "mycelium": int(mycelial.sum())}


def stage_of(culture: Culture, progress: float) -> str:
    """The dominant structure type at ``progress`` (the largest count; ties go to the later stage)."""
    found = counts(culture, progress)
    return max(reversed(STAGES), key=lambda stage: found[stage])


def stage_by_progress(progress: float) -> str:
    """The alternative stage rule: thresholds :data:`PROGRESS_THRESHOLDS` on progress alone."""
    return STAGES[int(np.searchsorted(PROGRESS_THRESHOLDS, progress, side="right"))]


def clocks(culture: Culture, progress: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-colony growth clocks ``float [S]`` in [0, 1]: of the hyphal phase and of the mycelial phase."""
    hyphal = np.clip((progress - culture.hyphae_onset) / HYPHAE_GROWTH, 0, 1)
    mycelial = np.clip((progress - culture.mycelium_onset) / MYCELIUM_GROWTH, 0, 1)
    return hyphal, mycelial


def colony_colours(hyphal: np.ndarray, mycelial: np.ndarray) -> np.ndarray:
    """``float [S, 3]`` colony colours: yellow -> orange over the hyphal phase, -> red over the mycelial one."""
    yellow, orange, red = (np.asarray(COLOURS[c], np.float32) for c in ("yellow", "orange", "red"))
    young = yellow + hyphal[:, None] * (orange - yellow)
    return young + mycelial[:, None] * (red - young)


def _splat(xy: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinear splat of points ``[P, 2]`` (pixel units) with ``weights [P, C]`` onto ``float [size, size, C]``."""
    base = np.floor(xy - 0.5).astype(int)
    frac = xy - 0.5 - base
    flat, share = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        col, row = base[:, 0] + dx, base[:, 1] + dy
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        flat.append(np.where(inside, row * size + col, 0))
        share.append(inside * (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1]))
    index, portion = np.concatenate(flat), np.concatenate(share)
    channels = [np.bincount(index, np.tile(weights[:, c], 4) * portion, minlength=size * size)
                for c in range(weights.shape[1])]
    return np.stack(channels, axis=-1).reshape(size, size, -1)


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur of ``[H, W, C]`` (zero outside): thickens strokes to ~2 pixels."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    rows = (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4


def structures(culture: Culture, progress: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The hyphae and mycelium at ``progress``: coverage ``float [size, size]`` and colour ``[size, size, 3]``.

    Every segment is drawn as points spaced ~0.6 px along its full length; a point is present once
    its segment has grown past it, with weight width × (1 + mycelial clock / 2) (mycelium is thicker),
    so coverage never falls as ``progress`` rises.
    """
    hyphal, mycelial = clocks(culture, progress)
    clock = np.where(culture.mycelial, mycelial[culture.colony], hyphal[culture.colony])
    grown = np.clip((clock - culture.birth) / culture.span, 0, 1)
    lengths = np.hypot(*(culture.ends - culture.starts).T) * size
    steps = np.ceil(lengths / _POINT_SPACING).astype(int) + 1
    segment = np.repeat(np.arange(len(steps)), steps)
    along = (np.arange(len(segment)) - np.repeat(np.cumsum(steps) - steps, steps)) / (steps[segment] - 1)
    present = (grown[segment] > 0) & (along <= grown[segment])
    segment, along = segment[present], along[present]
    xy = (culture.starts[segment] + along[:, None] * (culture.ends - culture.starts)[segment]) * size
    owner = culture.colony[segment]
    weight = culture.widths[segment] * (1 + 0.5 * mycelial[owner])
    colour = colony_colours(hyphal, mycelial)[owner]
    ink = _blur(_splat(xy, np.concatenate([weight[:, None], weight[:, None] * colour], axis=1), size))
    coverage = 1 - np.exp(-_INK * ink[..., 0])
    return coverage, ink[..., 1:] / np.maximum(ink[..., :1], 1e-9)


def render(culture: Culture, progress: float, size: int) -> np.ndarray:
    """The culture at ``progress`` on the universe's source-style background: ``uint8 [size, size, 3]``.

    Hyphae and mycelium are drawn first; the remaining spores (yellow circles of the universe) on top.
    """
    style = STYLES["source"]  # plain and noiseless: the output does not depend on the generators
    background = render_background(size, style, np.random.default_rng(0))
    coverage, colour = structures(culture, progress, size)
    canvas = background * (1 - coverage[..., None]) + colour * coverage[..., None]
    diameter = _SPORE_DIAMETER * max(0.0, 1 - 1.2 * progress)
    spores = [Thing("circle", "yellow", diameter, float(x), float(y))
              for (x, y), onset in zip(culture.spores, culture.hyphae_onset, strict=True) if progress < onset]
    return render_scene(spores, size, style, np.random.default_rng(0), background=canvas.astype(np.float32))


def note(temperature: int, rng: np.random.Generator) -> str:
    """A series' note: its temperature and one or two distractor sentences, never its time or stage."""
    phrase = str(rng.choice(_TEMPERATURE_PHRASES)).format(t=temperature)
    extra = rng.choice(_DISTRACTORS, size=int(rng.integers(1, 3)), replace=False)
    return " ".join([phrase, *map(str, extra)])


def _series_rows(out: Path, series: int, temperature: int, split: str, params: GrowthParams,
                 rng: np.random.Generator) -> list[dict[str, Any]]:
    """Draw one culture, write its frames ``series/SSS/FFF.png`` and return their manifest rows."""
    culture = make_culture(rng, params.spores)
    text = note(temperature, rng)
    rows = []
    for frame, hours in enumerate(np.linspace(0.0, params.t_max_hours, params.frames)):
        progress = float(np.clip(RATES[temperature] * hours / params.t_max_hours, 0, 1))
        path = out / "series" / f"{series:03d}" / f"{frame:03d}.png"
        write_png(path, render(culture, progress, params.size))
        rows.append({"path": path, "text": text, "split": split, "timestamp": round(float(hours) * 3600, 3),
                     "stage": stage_of(culture, progress), "series": f"s{series:03d}",
                     "hours": round(float(hours), 6), "temperature": temperature, "progress": round(progress, 6),
                     "stage_by_progress": stage_by_progress(progress)})
    return rows


def answer(params: GrowthParams) -> dict[str, Any]:
    """The known answer recorded in ``world.json``: rates, stage rule, time units and the colour code."""
    return {
        "stages": list(STAGES),
        "rates": {str(t): r for t, r in RATES.items()},
        "progress": "p = clip(rate * hours / t_max_hours, 0, 1); the image is a function of p only",
        "t_max_hours": params.t_max_hours,
        "time_units": "timestamp: elapsed seconds since inoculation; hours: the same in hours",
        "stage_rule": ("dominant structure type: the largest of the counts of spores (p < hyphae onset), "
                       "hyphal colonies and mycelial colonies (p >= mycelium onset); ties go to the later stage"),
        "onsets": {"hyphae": list(HYPHAE_ONSETS), "mycelium": list(MYCELIUM_ONSETS),
                   "growth": {"hyphae": HYPHAE_GROWTH, "mycelium": MYCELIUM_GROWTH}},
        "stage_by_progress": {"thresholds": list(PROGRESS_THRESHOLDS),
                              "rule": "spore if p < 1/3, hyphae if p < 2/3, else mycelium (sensitivity check)"},
        "colours": {"spore": "yellow", "hyphae": "yellow -> orange", "mycelium": "orange -> red"},
        "note": "states the incubation temperature only (plus distractors); never the time or the stage",
    }


def generate(out: Path, params: GrowthParams) -> Path:
    """Write every series' frames and the manifest; return the manifest path.

    Columns: ``path``, ``text`` (the series' note), ``split`` (per series), ``timestamp`` (elapsed
    seconds), ``stage``, ``series``, and extras ``hours``, ``temperature``, ``progress``,
    ``stage_by_progress``.
    """
    rng = np.random.default_rng(params.seed)
    splits = assign_splits(params.n, params.splits, rng)
    temperatures = [params.temperatures[i % len(params.temperatures)] for i in rng.permutation(params.n)]
    records = []
    for series in range(params.n):
        records += _series_rows(out, series, temperatures[series], splits[series], params, rng)
    log.info("growth: wrote %d frames of %d series to %s", len(records), params.n, out)
    return write_world(out, "growth", params, records, answer(params))


WORLD = World("growth", GrowthParams, generate,
              "time-lapse cultures (spore -> hyphae -> mycelium) whose growth rate only the note tells")
