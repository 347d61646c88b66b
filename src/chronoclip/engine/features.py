"""Frozen-feature caching for training and evaluation.

When a method declares a frozen extractor (:meth:`Method.frozen_features`) and a data set's samples
are the same every epoch (no random sampling or augmentation), the features are computed once into
the :class:`~chronoclip.engine.cache.FeatureCache` and the method trains on them: an epoch then
reads a safetensors shard instead of decoding video and running a ViT. The cache key covers the
backbone fingerprint, the feature, every pixel parameter (frames, size, sampling, views,
normalisation) and each file's size and mtime, so any change is a miss rather than a stale hit.

The cache lives in ``train.cache_dir``, or ``$CHRONOCLIP_CACHE``, or ``~/.cache/chronoclip/features``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from chronoclip.data.datasets import ManifestDataset, collate
from chronoclip.engine.cache import FeatureCache
from chronoclip.engine.extract import ItemSpec, extract_features
from chronoclip.methods.base import FrozenFeatures

log = logging.getLogger(__name__)


def cache_root(configured: str = "") -> Path:
    """The feature-cache folder: the configured one, ``$CHRONOCLIP_CACHE``, or ``~/.cache/chronoclip/features``."""
    chosen = configured or os.environ.get("CHRONOCLIP_CACHE", "")
    return Path(chosen).expanduser() if chosen else Path.home() / ".cache" / "chronoclip" / "features"


class CachedFeatures(Dataset[dict[str, Any]]):
    """A :class:`ManifestDataset` whose ``pixels`` are replaced by precomputed ``features``.

    Items are cached as ``[V, T, D]`` (V = 1 for training samples, so a training sample and a
    one-view evaluation sample of the same clip share one entry); a training sample yields ``[T, D]``.
    Labels, text and indices come from the base data set's rows without decoding any media.
    """

    def __init__(self, base: ManifestDataset, features: torch.Tensor) -> None:
        self.base, self.features = base, features

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        features = self.features[index]
        return {"features": features[0] if self.base.train else features, **self.base.row_fields(index)}


def feature_namespace(frozen: FrozenFeatures, dataset: ManifestDataset) -> dict[str, Any]:
    """Everything besides the file that determines a cached feature."""
    return {"feature": frozen.name, **frozen.namespace, **dataset.spec.pixel_params(dataset.train)}


def fill_cache(dataset: ManifestDataset, frozen: FrozenFeatures, root: Path, device: torch.device | str,
               batch_size: int = 16, shard_id: int = 0, num_shards: int = 1, progress: bool = True
               ) -> tuple[FeatureCache, list[str]]:
    """Compute what the cache lacks for ``dataset`` (this process's shard of it); resumable after a kill.

    Returns:
        The cache and the keys of every row of ``dataset``, in row order.
    """
    if not dataset.spec.deterministic(dataset.train):
        raise ValueError("samples vary between epochs (random sampling or augmentation): nothing to cache")
    position = {}
    items = []
    for index, record in enumerate(dataset.manifest):
        item = ItemSpec(record["path"], record.get("start"), record.get("end"))
        position[item] = index
        items.append(item)

    @torch.no_grad()
    def compute(batch: list[ItemSpec]) -> torch.Tensor:
        pixels = collate([dataset[position[item]] for item in batch])["pixels"].to(device)
        if dataset.train:  # training samples have no view axis; store them as one view
            pixels = pixels.unsqueeze(1)
        views = pixels.shape[1]
        return frozen.extract(pixels.flatten(0, 1)).float().cpu().unflatten(0, (len(batch), views))

    with FeatureCache(root, feature_namespace(frozen, dataset)) as cache:
        report = extract_features(items, compute, cache, batch_size=batch_size, shard_id=shard_id,
                                  num_shards=num_shards, progress=progress)
    log.info("feature cache %s: %d hits, %d computed", cache.path, report.cached, report.computed)
    return cache, [item.key() for item in items]


def cached_features(dataset: ManifestDataset, frozen: FrozenFeatures, root: Path, device: torch.device | str,
                    batch_size: int = 16, progress: bool = True) -> CachedFeatures:
    """Fill the cache for ``dataset`` and return the data set of its cached features."""
    cache, keys = fill_cache(dataset, frozen, root, device, batch_size, progress=progress)
    return CachedFeatures(dataset, cache.load_all(keys))


def extract_manifest(data: str | Path, backbone: str, frames: int = 8, split: str | None = None,
                     cache_dir: str = "", shard_id: int = 0, num_shards: int = 1, batch_size: int = 16
                     ) -> dict[str, Any]:
    """``chronoclip extract``: cache the frame embeddings ``frame-probe`` uses, for every row (or one split)."""
    from chronoclip.backbones import load_backbone
    from chronoclip.data.datasets import SampleSpec
    from chronoclip.data.manifest import load_manifest
    from chronoclip.methods.baselines import frame_embeddings

    manifest = load_manifest(data)
    rows = manifest.split(split) if split else manifest
    tower = load_backbone(backbone)
    tower.freeze(image=True, text="all")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tower.to(device)
    spec = SampleSpec(frames=frames, image_size=tower.image_size, mean=tower.mean, std=tower.std,
                      train_sampling="uniform", label=False)
    dataset = ManifestDataset(rows, spec, [], train=False)
    cache, keys = fill_cache(dataset, frame_embeddings(tower), cache_root(cache_dir), device, batch_size,
                             shard_id, num_shards)
    return {"cache": str(cache.path), "rows": len(keys), "cached_now": len(cache), "shard": [shard_id, num_shards]}
