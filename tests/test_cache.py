"""Frozen-feature cache: hits, misses, staleness, ordered loads, shape checks, resumable and sharded
extraction, and crash safety (a writer SIGKILLed mid-write never exposes a half-written shard).

Every test feature is a function of its key (:func:`_feature`), so anything read back can be checked.

``python tests/test_cache.py`` runs a micro-benchmark instead (read 1000 cached 8×768 fp32 items).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from chronoclip.engine.cache import CacheError, FeatureCache, item_key, list_namespaces, namespace_hash, prune
from chronoclip.engine.extract import ItemSpec, extract_features
from chronoclip.errors import MediaError

NAMESPACE = {"backbone": "tiny-0123456789abcdef", "feature": "frame_embeddings", "frames": 8, "size": 224,
             "sampling": "uniform", "mean": [0.5, 0.5, 0.5], "dtype": "float32"}
SHAPE = (3, 5)


def _feature(key: str, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    """A feature derived from the key alone (exact in float32)."""
    offset = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100_000
    return torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape) + offset


def _compute(batch: list[ItemSpec], shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.stack([_feature(item.key(), shape) for item in batch])


def _same(loaded: torch.Tensor | None, expected: torch.Tensor) -> bool:
    return loaded is not None and torch.equal(loaded, expected)


def _clips(path: Path, count: int) -> list[ItemSpec]:
    """``count`` one-second clips of one file (one file keeps stat calls and set-up cheap)."""
    return [ItemSpec(path, start=float(i), end=float(i + 1)) for i in range(count)]


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "video.mp4"
    path.parent.mkdir()
    path.write_bytes(b"not really a video")
    return path


def test_hit_after_put_and_miss_for_a_new_item(tmp_path: Path, media: Path) -> None:
    keys = [item_key(media, start=i, end=i + 1) for i in range(3)]
    cache = FeatureCache(tmp_path / "cache", NAMESPACE)
    assert len(cache) == 0 and cache.get(keys[0]) is None and cache.missing(keys) == keys
    cache.put({keys[0]: _feature(keys[0]), keys[1]: _feature(keys[1])})
    assert keys[0] in cache and _same(cache.get(keys[0]), _feature(keys[0]))  # buffered: visible at once
    cache.flush()
    reopened = FeatureCache(tmp_path / "cache", NAMESPACE)
    assert len(reopened) == 2 and reopened.missing(keys) == [keys[2]] and keys[2] not in reopened
    assert _same(reopened.get(keys[1]), _feature(keys[1]))
    assert reopened.item_shape == SHAPE and reopened.dtype == torch.float32
    reopened.put({keys[1]: _feature(keys[1])})  # already cached: not written again
    reopened.flush()
    assert len(list((reopened.path / "shards").iterdir())) == 1


def test_a_changed_backbone_or_parameter_is_another_namespace(tmp_path: Path, media: Path) -> None:
    key = item_key(media)
    with FeatureCache(tmp_path, NAMESPACE) as cache:
        cache.put({key: _feature(key)})
    assert key not in FeatureCache(tmp_path, {**NAMESPACE, "backbone": "tiny-fedcba9876543210"})
    assert key not in FeatureCache(tmp_path, {**NAMESPACE, "frames": 16})
    assert key in FeatureCache(tmp_path, dict(reversed(NAMESPACE.items())))  # key order does not matter
    assert namespace_hash({**NAMESPACE, "mean": (0.5, 0.5, 0.5)}) == namespace_hash(NAMESPACE)
    stored = json.loads((tmp_path / namespace_hash(NAMESPACE) / "namespace.json").read_text())
    assert stored == {"format": 1, "hash": namespace_hash(NAMESPACE), "namespace": NAMESPACE}


def test_an_edited_file_is_a_miss(tmp_path: Path, media: Path) -> None:
    old = item_key(media, start=0, end=2)
    assert old == item_key(media, start=0.0, end=2.0) != item_key(media, start=0.0, end=2.0, view=1)
    with FeatureCache(tmp_path, NAMESPACE) as cache:
        cache.put({old: _feature(old)})
    stat = media.stat()
    os.utime(media, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = item_key(media, start=0, end=2)
    with open(media, "ab") as handle:
        handle.write(b"x")
    os.utime(media, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    resized = item_key(media, start=0, end=2)
    assert len({old, touched, resized}) == 3
    cache = FeatureCache(tmp_path, NAMESPACE)
    assert old in cache and touched not in cache and resized not in cache
    with pytest.raises(MediaError, match=r"missing\.mp4"):
        item_key(media.parent / "missing.mp4")


def test_load_all_returns_rows_in_the_given_order(tmp_path: Path, media: Path) -> None:
    keys = [item_key(media, start=i) for i in range(14)]
    cache = FeatureCache(tmp_path, NAMESPACE, shard_items=4)
    cache.put({key: _feature(key) for key in keys[:12]})  # three shards on disk
    cache.put({key: _feature(key) for key in keys[12:]})  # two rows still buffered
    order = [*random.Random(0).sample(keys, len(keys)), keys[3], *keys[4:8]]  # shuffled, a repeat, one run
    assert torch.equal(cache.load_all(order), torch.stack([_feature(key) for key in order]))
    cache.flush()
    reopened = FeatureCache(tmp_path, NAMESPACE)
    assert torch.equal(reopened.load_all(order), torch.stack([_feature(key) for key in order]))
    assert reopened.load_all([]).shape == (0, *SHAPE)
    with pytest.raises(KeyError, match="1 of 2 keys"):
        reopened.load_all([keys[0], item_key(media, start=99)])


def test_one_shape_and_dtype_per_namespace(tmp_path: Path, media: Path) -> None:
    key, other = item_key(media, start=0), item_key(media, start=1)
    with FeatureCache(tmp_path, NAMESPACE) as cache:
        cache.put({key: _feature(key)})
        with pytest.raises(CacheError, match=r"shape \[3, 5\] float32.*shape \[3, 4\] float32"):
            cache.put({other: torch.zeros(3, 4)})
    reopened = FeatureCache(tmp_path, NAMESPACE)  # the shape is known from the index
    with pytest.raises(CacheError, match="float64"):
        reopened.put({other: torch.zeros(SHAPE, dtype=torch.float64)})
    with pytest.raises(CacheError, match="non-empty tensor"):
        reopened.put({other: torch.zeros(0)})
    with pytest.raises(CacheError, match="JSON"):
        FeatureCache(tmp_path, {"backbone": "x", "views": {1, 2}})
    with pytest.raises(CacheError, match="non-empty"):
        FeatureCache(tmp_path, {})
    with pytest.raises(CacheError, match="one row per item"):
        extract_features([ItemSpec(media, start=2)], lambda batch: torch.zeros(2, *SHAPE), reopened,
                         progress=False)


def test_resumed_extraction_computes_only_the_missing_items(tmp_path: Path, media: Path) -> None:
    items = _clips(media, 23)
    computed: list[ItemSpec] = []

    def dying(batch: list[ItemSpec]) -> torch.Tensor:
        if len(computed) == 8:  # dies in its third batch of 4
            raise RuntimeError("killed")
        computed.extend(batch)
        return _compute(batch)

    with pytest.raises(RuntimeError, match="killed"):
        extract_features(items, dying, FeatureCache(tmp_path, NAMESPACE, shard_items=3), batch_size=4,
                         progress=False)
    computed.clear()

    def counting(batch: list[ItemSpec]) -> torch.Tensor:
        computed.extend(batch)
        return _compute(batch)

    report = extract_features(items + items[:2], counting, FeatureCache(tmp_path, NAMESPACE), batch_size=4,
                              progress=False)
    assert computed == items[8:] and (report.items, report.cached, report.computed) == (23, 8, 15)
    computed.clear()
    cache = FeatureCache(tmp_path, NAMESPACE)
    again = extract_features(items, counting, cache, progress=False)
    assert computed == [] and (again.cached, again.computed) == (23, 0)
    keys = [item.key() for item in items]
    assert torch.equal(cache.load_all(keys), torch.stack([_feature(key) for key in keys]))


def test_two_shards_write_apart_and_one_reader_sees_all(tmp_path: Path, media: Path) -> None:
    items = _clips(media, 21)
    seen: list[set[float | None]] = [set(), set()]
    writers = [FeatureCache(tmp_path, NAMESPACE, shard_items=4) for _ in range(2)]
    for shard_id, writer in enumerate(writers):
        def compute(batch: list[ItemSpec], shard_id: int = shard_id) -> torch.Tensor:
            seen[shard_id].update(item.start for item in batch)
            return _compute(batch)

        report = extract_features(items, compute, writer, batch_size=3, shard_id=shard_id, num_shards=2,
                                  progress=False)
        assert report.computed == len(items[shard_id::2])
    assert seen[0] == {float(i) for i in range(0, 21, 2)} and seen[1] == {float(i) for i in range(1, 21, 2)}
    assert len(list((tmp_path / namespace_hash(NAMESPACE) / "index").glob("*.jsonl"))) == 2
    reader = FeatureCache(tmp_path, NAMESPACE)
    keys = [item.key() for item in items]
    assert len(reader) == 21 and torch.equal(reader.load_all(keys), torch.stack([_feature(k) for k in keys]))
    writers[0].put({"late": _feature("late")})
    writers[0].flush()
    assert "late" not in reader
    reader.refresh()
    assert _same(reader.get("late"), _feature("late"))


def test_a_crash_between_shard_and_index_leaves_misses_and_prune_tidies(
        tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [item_key(media, start=i) for i in range(6)]
    cache = FeatureCache(tmp_path, NAMESPACE, shard_items=3)
    cache.put({key: _feature(key) for key in keys[:3]})

    def crash(self: FeatureCache, record: dict[str, object]) -> None:
        raise OSError("killed before the index update")

    monkeypatch.setattr(FeatureCache, "_append_record", crash)
    with pytest.raises(OSError, match="killed"):
        cache.put({key: _feature(key) for key in keys[3:]})
    monkeypatch.undo()
    shards = cache.path / "shards"
    assert len(list(shards.glob("*.safetensors"))) == 2  # the second shard exists, unindexed
    reopened = FeatureCache(tmp_path, NAMESPACE)
    assert reopened.missing(keys) == keys[3:]
    assert torch.equal(reopened.load_all(keys[:3]), torch.stack([_feature(k) for k in keys[:3]]))
    (shards / ".leftover.safetensors.tmp").write_bytes(b"half")
    stale = FeatureCache(tmp_path, {**NAMESPACE, "backbone": "old"})
    with stale:
        stale.put({keys[0]: _feature(keys[0])})
    assert len(list_namespaces(tmp_path)) == 2
    removed = prune(tmp_path, keep=[NAMESPACE])
    assert len(removed) == 3 and stale.path in removed
    assert [info.namespace for info in list_namespaces(tmp_path)] == [NAMESPACE]
    assert len(list(shards.iterdir())) == 1 and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert torch.equal(FeatureCache(tmp_path, NAMESPACE).load_all(keys[:3]), reopened.load_all(keys[:3]))


KILL_SHAPE = (64, 128)  # 32 KiB per item, 8 items per shard: most of a writer's time is spent writing shards


def writer_child(root: str, media: str, count: str, shard_id: str, num_shards: str) -> None:
    """Body of the writer subprocess the SIGKILL test starts (``sys.argv``-style string arguments)."""
    cache = FeatureCache(root, NAMESPACE, shard_items=8)
    print("ready", flush=True)
    extract_features(_clips(Path(media), int(count)), lambda batch: _compute(batch, KILL_SHAPE), cache,
                     batch_size=4, shard_id=int(shard_id), num_shards=int(num_shards), progress=False)
    print("done", flush=True)


def _check_everything_visible_is_whole(root: Path, keys: list[str]) -> int:
    """Every indexed item equals what was written, and every shard under a final name is complete."""
    cache = FeatureCache(root, NAMESPACE)
    present = [key for key in keys if key in cache]
    if present:
        assert torch.equal(cache.load_all(present), torch.stack([_feature(k, KILL_SHAPE) for k in present]))
    for shard in (cache.path / "shards").glob("[!.]*"):
        assert load_file(str(shard))["features"].shape[1:] == KILL_SHAPE
    return len(present)


def test_sigkill_mid_write_never_exposes_a_half_written_shard(
        tmp_path: Path, media: Path, caplog: pytest.LogCaptureFixture) -> None:
    count, processes, rng = 3000, 3, random.Random(1)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_cache; "
            f"test_cache.writer_child(*sys.argv[1:])")
    children = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(media), str(count), str(shard),
                                  str(processes)], stdout=subprocess.PIPE) for shard in range(processes)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        for child in rng.sample(children, processes):  # killed one by one at random moments while writing
            time.sleep(rng.uniform(0.02, 0.25))
            child.send_signal(signal.SIGKILL)
            child.wait()
    finally:
        for child in children:
            child.kill()
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
    keys = [item.key() for item in _clips(media, count)]
    with caplog.at_level(logging.WARNING):
        cached = _check_everything_visible_is_whole(tmp_path, keys)
    assert not caplog.records  # no index line names a missing or damaged shard
    calls: list[int] = []

    def compute(batch: list[ItemSpec]) -> torch.Tensor:
        calls.append(len(batch))
        return _compute(batch, KILL_SHAPE)

    report = extract_features(_clips(media, count), compute, FeatureCache(tmp_path, NAMESPACE), progress=False)
    assert report.cached == cached and sum(calls) == report.computed == count - cached
    assert _check_everything_visible_is_whole(tmp_path, keys) == count


def _drop_page_cache(folder: Path) -> None:
    """Evict ``folder``'s files from the OS page cache (only these files), so the next read is from disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def benchmark(root: Path, items: int = 1000, shape: tuple[int, int] = (8, 768), repeats: int = 7) -> None:
    """Print the time to read ``items`` cached ``shape`` fp32 features with ``load_all`` (nothing computed).

    Three states: "mapped" reuses one :class:`FeatureCache` (shards already memory-mapped: the steady
    state over epochs); "fresh" opens a new one per read (index read included), files in the OS page cache;
    "cold" also evicts the files from the page cache first, so they are read from disk.
    """
    keys = [f"/data/clip-{i:06d}.mp4|size=1|mtime_ns=1|start=-|end=-|view=-" for i in range(items)]
    features = torch.randn(items, *shape)

    def median_ms(run: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
        run()
        times = []
        for _ in range(repeats):
            before()
            began = time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
        return 1000 * sorted(times)[len(times) // 2]

    def row(label: str, run: Callable[[], object], before: Callable[[], object] = lambda: None) -> None:
        print(f"  {label:<52} {median_ms(run, before):7.1f} ms")

    raw = root / "raw" / "raw.safetensors"
    raw.parent.mkdir()
    save_file({"features": features}, str(raw))
    print(f"{items} items x {list(shape)} fp32 = {features.numel() * 4 / 2**20:.1f} MiB; median of {repeats} runs")
    row("one safetensors file: load_file + copy (page cache)", lambda: load_file(str(raw))["features"].clone())
    row("one safetensors file: load_file + copy (cold)", lambda: load_file(str(raw))["features"].clone(),
        lambda: _drop_page_cache(raw.parent))
    shuffled = random.Random(0).sample(keys, len(keys))
    for shard_items in (1024, 256):
        namespace = {"feature": "bench", "shard_items": shard_items}
        with FeatureCache(root, namespace, shard_items=shard_items) as writer:
            writer.put(dict(zip(keys, features, strict=True)))
        with FeatureCache(root, namespace) as cache:
            assert torch.equal(cache.load_all(shuffled), features[[keys.index(k) for k in shuffled]])
            row(f"load_all, {shard_items}-item shards, mapped", partial(cache.load_all, keys))
            row(f"load_all, {shard_items}-item shards, mapped, shuffled order", partial(cache.load_all, shuffled))
            row(f"load_all, {shard_items}-item shards, mapped, 64 random items", partial(cache.load_all, shuffled[:64]))

        def fresh(namespace: dict[str, Any] = namespace) -> torch.Tensor:
            with FeatureCache(root, namespace) as cache:
                return cache.load_all(keys)

        row(f"load_all, {shard_items}-item shards, fresh (page cache)", fresh)
        row(f"load_all, {shard_items}-item shards, fresh (cold)", fresh, partial(_drop_page_cache, writer.path))
    big = [f"/data/videos/class_{i % 400:03d}/clip-{i:06d}.mp4|size=1234567|mtime_ns=1712345678901234567|"
           f"start=-|end=-|view=-" for i in range(100_000)]
    with FeatureCache(root, {"feature": "index-bench"}) as writer:
        writer.put({key: torch.zeros(4) for key in big})
    row(f"open an index of {len(big)} items", partial(FeatureCache, root, {"feature": "index-bench"}))


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        benchmark(Path(folder))
