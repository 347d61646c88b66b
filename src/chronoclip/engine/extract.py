"""Resumable, shardable extraction of frozen features into a :class:`~chronoclip.engine.cache.FeatureCache`.

``extract_features`` computes features only for items the cache lacks, in batches, and writes them
through the cache (atomic shards), so a run killed at any point and started again computes only what
is still missing. ``chronoclip extract`` wires a compute function that decodes media and runs a frozen
backbone to it.

Several processes can share the work on one namespace: process ``shard_id`` of ``num_shards`` takes the
items whose position ``i`` satisfies ``i % num_shards == shard_id``. Each process writes its own shard
files and index fragment (the cache gives every writer a unique id), so no locks are needed; any
:class:`FeatureCache` opened afterwards (or after :meth:`FeatureCache.refresh`) sees every process's items.

Example:
    >>> namespace = {"backbone": backbone.fingerprint(), "feature": "frame_embeddings", "frames": 8}  # doctest: +SKIP
    >>> cache = FeatureCache("features", namespace)                               # doctest: +SKIP
    >>> items = [ItemSpec(p) for p in paths]                                       # doctest: +SKIP
    >>> report = extract_features(items, compute, cache, batch_size=16)            # doctest: +SKIP
    >>> features = cache.load_all([item.key() for item in items])                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from chronoclip.engine.cache import CacheError, FeatureCache, item_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemSpec:
    """One input whose feature is cached: a file, optionally a clip ``[start, end)`` seconds and a view index.

    The compute function receives these as they are; the cache key adds the file's size and ``mtime_ns``.
    """

    path: str | Path
    start: float | None = None
    end: float | None = None
    view: int | None = None

    def key(self) -> str:
        """The cache key (:func:`~chronoclip.engine.cache.item_key`); stats the file."""
        return item_key(self.path, self.start, self.end, self.view)


@dataclass(frozen=True)
class ExtractReport:
    """What one ``extract_features`` call did.

    Attributes:
        items: distinct items assigned to this process (its shard of the input).
        cached: of those, already in the cache at the start (hits).
        computed: items computed and written now (misses).
        seconds: wall time of the call.
        shard_id, num_shards: which part of the input this process took.
    """

    items: int
    cached: int
    computed: int
    seconds: float
    shard_id: int = 0
    num_shards: int = 1

    @property
    def items_per_second(self) -> float:
        """Computed items per second (0 when nothing was computed)."""
        return self.computed / self.seconds if self.computed and self.seconds > 0 else 0.0


def extract_features(items: Sequence[ItemSpec], compute: Callable[[list[ItemSpec]], torch.Tensor],
                     cache: FeatureCache, batch_size: int = 32, shard_id: int = 0, num_shards: int = 1,
                     progress: bool = True) -> ExtractReport:
    """Compute and cache the features of the items of this shard that the cache lacks.

    Args:
        items: every input (all processes pass the same sequence).
        compute: maps a batch of up to ``batch_size`` items to features ``[B, *item_shape]`` (row ``i`` is
            item ``i``), e.g. decode + frozen backbone forward.
        cache: where features go; it is flushed before returning, also when ``compute`` raises.
        batch_size: items per ``compute`` call.
        shard_id, num_shards: this process takes the items at positions ``i % num_shards == shard_id``.
        progress: show a tqdm bar (rate and ETA) over the items to compute.

    Raises:
        CacheError: bad ``batch_size``/shard arguments, or ``compute`` returned the wrong number of rows.
    """
    if batch_size < 1 or num_shards < 1 or not 0 <= shard_id < num_shards:
        raise CacheError(f"need batch_size >= 1 and 0 <= shard_id < num_shards, got batch_size={batch_size}, "
                         f"shard_id={shard_id}, num_shards={num_shards}")
    began = time.perf_counter()
    mine = {item.key(): item for item in items[shard_id::num_shards]}
    todo = [(key, item) for key, item in mine.items() if key not in cache]
    log.info("extract %d/%d into %s: %d items, %d cached (hits), %d to compute (misses)",
             shard_id, num_shards, cache.path, len(mine), len(mine) - len(todo), len(todo))
    bar = tqdm(total=len(todo), unit="item", desc=f"extract {shard_id}/{num_shards}", disable=not progress,
               dynamic_ncols=True)
    try:
        for first in range(0, len(todo), batch_size):
            batch = todo[first:first + batch_size]
            features = compute([item for _, item in batch])
            if not isinstance(features, torch.Tensor) or features.ndim < 1 or features.shape[0] != len(batch):
                got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
                raise CacheError(f"compute returned {got} for a batch of {len(batch)} items; it must return a "
                                 f"tensor [B, ...] with one row per item")
            cache.put({key: row for (key, _), row in zip(batch, features, strict=True)})
            bar.update(len(batch))
    finally:
        bar.close()
        cache.flush()
    report = ExtractReport(len(mine), len(mine) - len(todo), len(todo), time.perf_counter() - began,
                           shard_id, num_shards)
    log.info("extract %d/%d: computed %d items in %.1f s (%.1f items/s); cache now holds %d items",
             shard_id, num_shards, report.computed, report.seconds, report.items_per_second, len(cache))
    return report
