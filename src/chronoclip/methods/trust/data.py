"""TRUST's training samples: a source sample and a target sample per index, both domains cycling.

An epoch of :class:`DomainPairs` has ``max(|source|, |target|)`` indices, so with batch B it is
``max(|source loader|, |target loader|)`` iterations; index i takes source row ``i mod |source|`` and
target row ``i mod |target|`` — the shorter domain restarts, and the engine's per-epoch shuffle of the
indices re-pairs them each epoch. Target samples carry no label (their data sets are built without one),
so no training code path can read a target label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

#: Key prefixes of the two domains' fields in a training sample (``source_label``, ``target_text``, ...).
PREFIXES = ("source", "target")


class DomainPairs(Dataset[dict[str, Any]]):
    """Paired samples ``{"source_<key>": ..., "target_<key>": ...}`` of per-domain data sets.

    Args:
        parts: ``{"source": data set, "target": data set, "source_strong": ..., "target_strong": ...}``:
            the weak view of each domain, and optionally a strong (augmented) view of the same rows
            (its ``pixels`` become ``<domain>_strong_pixels``).
    """

    def __init__(self, parts: dict[str, Dataset[dict[str, Any]]]) -> None:
        missing = [p for p in PREFIXES if p not in parts]
        if missing:
            raise ValueError(f"DomainPairs needs a data set for each of {PREFIXES}; missing {missing}")
        self.parts = parts
        self.sizes = {name: len(part) for name, part in parts.items()}  # type: ignore[arg-type]
        empty = [name for name, size in self.sizes.items() if size == 0]
        if empty:
            raise ValueError(f"no training rows in {empty}")

    def __len__(self) -> int:
        return max(self.sizes[p] for p in PREFIXES)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of every part's random draws."""
        for part in self.parts.values():
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def map_parts(self, transform: Callable[[Dataset[dict[str, Any]]], Dataset[dict[str, Any]]]) -> DomainPairs:
        """The same pairs with every part replaced by ``transform(part)`` (e.g. its cached features)."""
        return DomainPairs({name: transform(part) for name, part in self.parts.items()})

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} of {len(self)}")
        sample: dict[str, Any] = {}
        for name, part in self.parts.items():
            item = part[index % self.sizes[name]]
            if name.endswith("_strong"):
                sample[f"{name}_pixels"] = item["pixels"]
            else:
                sample.update({f"{name}_{key}": value for key, value in item.items()})
        return sample
