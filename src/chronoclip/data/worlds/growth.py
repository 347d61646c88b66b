"""The ``growth`` world: time-lapse series of a culture growing spore → hyphae → mycelium (spec C.2, C.8).

Each series has a hidden incubation temperature θ ∈ {18, 24, 30} °C that sets its growth rate
r ∈ {0.6, 1.0, 1.4}; developmental progress is p = clip(r·t / t_max, 0, 1) and drives the image.
The image therefore shows p but not t (ambiguous up to r); the note says the temperature (so r) and
never the time or the stage — text is necessary to read t = p·t_max / r, and a text-only model
knows r but not p. The stage is the dominant structure type present (see :func:`stage_of`).

Rendering follows the Funghi generator's logic in our own NumPy code: spores shrink and convert
to hyphae (branching strokes) from p = 0.1; hyphae turn into dense red mycelium from p = 0.5;
colour runs yellow → orange → red. Frames of a series share one random state (the same spores and
branch geometry grow consistently).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import COLOURS
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

STAGES = ("spore", "hyphae", "mycelium")
RATES = {18: 0.6, 24: 1.0, 30: 1.4}
_DISTRACTORS = (
    "the plate was photographed from above.", "the lid stayed closed.", "lab lights were on.",
    "sample taken from the cold room.", "the agar looked smooth.", "no contamination was noted.",
    "camera focus was checked.", "the dish sat on the left shelf.", "humidity was kept steady.",
)
_BACKGROUND = np.array((0.10, 0.10, 0.12), np.float32)
_AGAR = np.array((0.80, 0.76, 0.62), np.float32)


@dataclass
class GrowthParams(WorldParams):
    """Parameters of the growth world.

    Attributes:
        n: number of series (cultures); splits are assigned per series.
        frames: frames per series, evenly spaced over [0, t_max_hours].
        size: image side in pixels.
        t_max_hours: the time span of every series.
        spores: spores per culture.
        temperatures: the incubation temperatures drawn per series (each must be in ``RATES``).
    """

    n: int = 40
    frames: int = 12
    size: int = 64
    t_max_hours: float = 48.0
    spores: int = 16
    temperatures: list[int] = field(default_factory=lambda: [18, 24, 30])

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [t for t in self.temperatures if t not in RATES]
        if unknown or not self.temperatures:
            raise ValueError(f"temperatures must be among {sorted(RATES)}, got {self.temperatures}")
        if self.n < 1 or self.frames < 2 or self.size < 16 or self.spores < 1 or self.t_max_hours <= 0:
            raise ValueError(f"need n >= 1, frames >= 2, size >= 16, spores >= 1, t_max_hours > 0: {self}")


@dataclass(frozen=True)
class Culture:
    """The fixed random state of one series: spores, their conversion times and branch geometry.

    ``segments`` is ``[M, 6]``: start x, y, end x, y (frame fractions), birth in [0, 1) along the
    growth of its tree, and the spore it belongs to.
    """

    spores: np.ndarray  # [S, 2]
    hyphae_onset: np.ndarray  # [S] progress at which each spore turns into hyphae, in [0.1, 0.5)
    mycelium_onset: np.ndarray  # [S] progress at which its hyphae turn into mycelium, in [0.5, 0.85)
    segments: np.ndarray


def _branches(rng: np.random.Generator, x: float, y: float, angle: float, length: float, depth: int,
              birth: float, span: float, spore: int, out: list[list[float]]) -> None:
    """Append a segment and, recursively, its Poisson(3)-many sub-branches (capped at 3)."""
    end_x, end_y = x + length * np.cos(angle), y + length * np.sin(angle)
    out.append([x, y, end_x, end_y, birth, spore])
    if depth == 0:
        return
    for _ in range(min(3, int(rng.poisson(3)))):
        _branches(rng, end_x, end_y, angle + rng.uniform(-1.2, 1.2), length * rng.uniform(0.45, 0.7),
                  depth - 1, birth + span, span, spore, out)


def make_culture(rng: np.random.Generator, spores: int) -> Culture:
    """Draw one culture. Onsets are stratified so spore counts fall and mycelium counts rise monotonically."""
    positions = rng.uniform(0.15, 0.85, size=(spores, 2))
    order = rng.permutation(spores)
    hyphae = 0.1 + 0.4 * (order + rng.uniform(0, 1, spores)) / spores
    mycelium = 0.5 + 0.35 * (order + rng.uniform(0, 1, spores)) / spores
    segments: list[list[float]] = []
    for index, (x, y) in enumerate(positions):
        for _ in range(2):
            _branches(rng, x, y, rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.16), 2, 0.0, 0.33, index, segments)
    return Culture(positions, hyphae, mycelium, np.asarray(segments, np.float32))


def counts(culture: Culture, progress: float) -> dict[str, int]:
    """How many spores are still spores, hyphae or mycelium at ``progress``."""
    hyphae = progress >= culture.hyphae_onset
    mycelium = progress >= culture.mycelium_onset
    return {"spore": int((~hyphae).sum()), "hyphae": int((hyphae & ~mycelium).sum()),
            "mycelium": int(mycelium.sum())}


def stage_of(culture: Culture, progress: float) -> str:
    """The dominant structure type at ``progress`` (ties go to the later stage)."""
    found = counts(culture, progress)
    return max(reversed(STAGES), key=lambda s: found[s])


def _segment_distance(grid_x: np.ndarray, grid_y: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distance ``[M, H*W]`` from every pixel centre to every segment."""
    x0, y0, x1, y1 = (segments[:, i:i + 1] for i in range(4))
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((grid_x - x0) * dx + (grid_y - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
    return np.hypot(grid_x - (x0 + t * dx), grid_y - (y0 + t * dy))


def render(culture: Culture, progress: float, size: int) -> np.ndarray:
    """The culture at ``progress`` as ``uint8 [size, size, 3]``."""
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size
    grid_x, grid_y = np.meshgrid(pixel, pixel)
    canvas = np.where((np.hypot(grid_x - 0.5, grid_y - 0.5) < 0.48)[..., None], _AGAR, _BACKGROUND)
    flat_x, flat_y = grid_x.reshape(1, -1), grid_y.reshape(1, -1)
    spore = culture.segments[:, 5].astype(int)
    grown = np.clip((progress - culture.hyphae_onset[spore]) / 0.35, 0, 1)  # tree growth per segment
    visible = grown > culture.segments[:, 4]
    if visible.any():
        segments = culture.segments[visible].copy()
        fraction = np.clip((grown[visible] - segments[:, 4]) / 0.33, 0, 1)[:, None]
        segments[:, 2:4] = segments[:, 0:2] + fraction * (segments[:, 2:4] - segments[:, 0:2])
        maturity = np.clip((progress - culture.mycelium_onset[spore[visible]]) / 0.15, 0, 1)[:, None]
        width = (0.6 + 1.4 * maturity) / size
        coverage = np.clip(1.0 - _segment_distance(flat_x, flat_y, segments) / width, 0, 1)
        colour = (1 - maturity) * np.asarray(COLOURS["orange"]) + maturity * np.asarray(COLOURS["red"])
        weight = coverage.max(axis=0)
        mix = (coverage[..., None] * colour[:, None, :]).sum(0) / np.maximum(coverage.sum(0), 1e-6)[:, None]
        canvas = canvas * (1 - weight.reshape(size, size, 1)) + (mix * weight[:, None]).reshape(size, size, 3)
    radius = 0.035 * max(0.0, 1 - 1.2 * progress) + 0.01
    still_spores = culture.spores[progress < culture.hyphae_onset]
    if len(still_spores):
        distance = np.hypot(flat_x - still_spores[:, :1], flat_y - still_spores[:, 1:]).min(axis=0)
        spot = np.clip(1 - (distance - radius) * size, 0, 1).reshape(size, size, 1)
        canvas = canvas * (1 - spot) + np.asarray(COLOURS["yellow"]) * spot
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)


def note(temperature: int, rng: np.random.Generator) -> str:
    """The series' note: its temperature and distractors, never its time or stage."""
    extra = rng.choice(_DISTRACTORS, size=int(rng.integers(1, 3)), replace=False)
    return " ".join([f"incubated at {temperature} °C.", *map(str, extra)])


def generate(out: Path, params: GrowthParams) -> Path:
    """Write ``series/SSS/FFF.png`` and the manifest (path, text, split, timestamp, stage, series, ...)."""
    rng = np.random.default_rng(params.seed)
    series_splits = assign_splits(params.n, params.splits, rng)
    times = np.linspace(0.0, params.t_max_hours, params.frames)
    records = []
    for series in range(params.n):
        temperature = int(rng.choice(params.temperatures))
        rate = RATES[temperature]
        culture = make_culture(rng, params.spores)
        text = note(temperature, rng)
        for frame, hours in enumerate(times):
            progress = float(np.clip(rate * hours / params.t_max_hours, 0, 1))
            path = out / "series" / f"{series:03d}" / f"{frame:03d}.png"
            write_png(path, render(culture, progress, params.size))
            records.append({"path": path, "text": text, "split": series_splits[series],
                            "timestamp": round(float(hours) * 3600, 3), "stage": stage_of(culture, progress),
                            "series": f"s{series:03d}", "hours": round(float(hours), 4),
                            "temperature": temperature, "progress": round(progress, 6)})
    log.info("growth: wrote %d frames of %d series to %s", len(records), params.n, out)
    answer = {"stages": list(STAGES), "rates": {str(k): v for k, v in RATES.items()},
              "t_max_hours": params.t_max_hours, "time_unit": "timestamp is elapsed seconds; hours column in hours",
              "stage_rule": "dominant structure type (counts of spores, hyphae, mycelium); ties to the later stage"}
    return write_world(out, "growth", params, records, answer)


WORLD = World("growth", GrowthParams, generate,
              "time-lapse cultures (spore -> hyphae -> mycelium) whose growth rate is told only by the note")
