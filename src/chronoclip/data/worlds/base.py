"""What every synthetic world shares: its parameter base class, split assignment and output layout.

A world writes real media files under ``OUT`` plus ``OUT/manifest.csv`` (the one schema) and
``OUT/world.json`` (the world's name, its parameters and the known answer it is built around).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from chronoclip.data.manifest import write_manifest
from chronoclip.io.writers import atomic_path


@dataclass
class WorldParams:
    """Parameters every world takes; each world subclasses this with its own fields.

    Attributes:
        seed: everything a world writes is a deterministic function of its parameters and this seed.
        splits: fractions of train / val / test (assigned per sample, or per series where a world
            has series), normalised to sum to 1.
    """

    seed: int = 0
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if len(self.splits) != 3 or min(self.splits) < 0 or sum(self.splits) <= 0:
            raise ValueError(f"splits must be three non-negative fractions, got {self.splits}")


P = TypeVar("P", bound=WorldParams)


@dataclass(frozen=True)
class World(Generic[P]):
    """A registered world: its name, parameter class and generator.

    ``generate(out, params)`` writes the files and returns the manifest path.
    """

    name: str
    params: type[P]
    generate: Callable[[Path, P], Path]
    description: str = field(default="")


def assign_splits(count: int, fractions: Sequence[float], rng: np.random.Generator) -> list[str]:
    """Shuffle ``count`` items into train/val/test with the given fractions (every non-zero split
    gets at least one item when ``count`` allows)."""
    total = float(sum(fractions))
    sizes = [round(count * f / total) for f in fractions]
    for i, fraction in enumerate(fractions):
        if fraction > 0 and sizes[i] == 0 and count >= sum(1 for f in fractions if f > 0):
            sizes[i] = 1
    while sum(sizes) > count:
        sizes[int(np.argmax(sizes))] -= 1
    sizes[0] += count - sum(sizes)
    names = [name for name, size in zip(("train", "val", "test"), sizes, strict=True) for _ in range(size)]
    return [names[i] for i in rng.permutation(count)]


def write_world(out: Path, world_name: str, params: WorldParams, records: Sequence[Mapping[str, Any]],
                answer: Mapping[str, Any]) -> Path:
    """Write ``manifest.csv`` and ``world.json`` (name, parameters, known answer); return the manifest path."""
    manifest = write_manifest(records, out / "manifest.csv")
    info = {"world": world_name, "params": asdict(params), "answer": dict(answer), "rows": len(records)}
    with atomic_path(out / "world.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
