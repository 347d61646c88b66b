"""Frozen-feature cache: features of frozen towers, computed once and reused across epochs and runs.

A cached feature is found by two things:

- the **namespace** — a JSON-able dict of everything besides the input that determines the feature:
  backbone fingerprint (``Backbone.fingerprint()``), feature name (``"frame_embeddings"``,
  ``"tokens_layer_6"``), sampling and transform parameters (frames, strategy, size, crop, mean/std,
  views), dtype. Its canonical JSON (sorted keys) is hashed with sha256 into a folder name, so a changed
  backbone or parameter is a different folder: old features are never served (stale detected), and old
  namespaces can be listed (:func:`list_namespaces`) and removed (:func:`prune`). Values compare as JSON:
  tuples equal lists, but ``224`` and ``224.0`` differ.
- the **item key** — :func:`item_key`: the file's absolute path, size and ``mtime_ns``, plus the clip's
  start/end seconds and the view index. An edited file has a new key, so its old feature is a miss.

On-disk layout (``FORMAT_VERSION`` 1)::

    ROOT/<namespace hash, 20 hex digits>/
        namespace.json                      {"format": 1, "hash": ..., "namespace": {...}} (human-readable)
        shards/<writer>-<seq>.safetensors   one tensor "features" [rows, *item_shape]
        index/<writer>.jsonl                one JSON line per shard of that writer:
                                            {"shard", "rows", "shape", "dtype", "keys": [row 0 key, ...]}

Every :class:`FeatureCache` that writes gets a unique writer id (pid + random), so processes never write
to the same file: each has its own shards and its own index fragment, and readers merge the fragments
(first record of a key wins; fragments are read in name order). This is what lets ``extract`` run as P
processes on one namespace without locks.

Crash safety: a shard is written to a temporary file, fsynced and renamed into place (and the folder
fsynced) *before* its index line is appended (and fsynced). A kill at any moment leaves either a complete
shard that no index line names yet (an orphan: its items are simply misses; :func:`prune` deletes it) or
an index line that is incomplete (no trailing newline: readers ignore it). No index line ever names a
missing or half-written shard; if one does anyway (a shard deleted by hand), it is skipped with a warning.

Why JSON-lines fragments for the index: appending one line per shard costs O(shard) per write (rewriting a
whole index per shard would be quadratic), a torn line is detectable, and reading is one ``json.loads``
per shard — opening an index of 100k items in ~100 shards takes tens of milliseconds. Readers
memory-map shards and copy only the requested rows.

Example:
    >>> cache = FeatureCache("features", {"backbone": "ab12", "feature": "frame_embeddings"})  # doctest: +SKIP
    >>> key = item_key("clip.mp4", start=0.0, end=2.0)                     # doctest: +SKIP
    >>> with cache:                                                        # doctest: +SKIP
    ...     cache.put({key: torch.randn(8, 512)})                          # written on leaving the block
    >>> cache.load_all([key]).shape                                        # doctest: +SKIP
    torch.Size([1, 8, 512])
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from chronoclip.errors import ChronoclipError, MediaError
from chronoclip.io.writers import atomic_path, fsync_dir

log = logging.getLogger(__name__)

#: Version of the on-disk layout; part of every namespace hash, so a new layout never reads an old one.
FORMAT_VERSION = 1
_HASH_DIGITS = 20
_HASH_NAME = re.compile(rf"^[0-9a-f]{{{_HASH_DIGITS}}}$")
_TRASH_PREFIX = ".trash-"
_TENSOR = "features"
#: Memory maps kept open per cache (least recently used are closed first; bounds file descriptors).
_MAX_OPEN_SHARDS = 64


class CacheError(ChronoclipError):
    """The feature cache was used inconsistently (shape/dtype change within a namespace, bad namespace or
    key) or holds a damaged shard."""


def _canonical_json(namespace: Mapping[str, Any]) -> str:
    try:
        return json.dumps(namespace, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"feature-cache namespace must hold only JSON values (str, number, bool, None, "
                         f"lists, dicts with str keys) without NaN: {exc}") from exc


def namespace_hash(namespace: Mapping[str, Any]) -> str:
    """The folder name of ``namespace``: sha256 of its canonical JSON and the format version (20 hex digits)."""
    if not isinstance(namespace, Mapping) or not namespace:
        raise CacheError(f"feature-cache namespace must be a non-empty dict, got {namespace!r}")
    text = f"chronoclip-feature-cache/{FORMAT_VERSION}\n{_canonical_json(namespace)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_DIGITS]


def _seconds(value: float | None) -> str:
    return "-" if value is None else repr(float(value))


def item_key(path: str | Path, start: float | None = None, end: float | None = None,
             view: int | None = None) -> str:
    """The cache key of one input: absolute path, size, ``mtime_ns``, clip start/end seconds, view index.

    Size and modification time make an edited file a miss. ``start``/``end`` are normalised to floats
    (``1`` and ``1.0`` give the same key).

    Raises:
        MediaError: ``path`` does not exist.
    """
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise MediaError(path, "cannot stat the file for its feature-cache key", str(exc)) from exc
    return (f"{resolved}|size={stat.st_size}|mtime_ns={stat.st_mtime_ns}|start={_seconds(start)}"
            f"|end={_seconds(end)}|view={'-' if view is None else int(view)}")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _parse_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise CacheError(f"unknown dtype '{name}' in a feature-cache index")
    return dtype


@dataclass(frozen=True)
class _Shard:
    """One indexed shard: its file and the number of rows the index says it holds."""

    path: Path
    rows: int


def _read_complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """The newline-terminated lines of ``path`` after byte ``offset``, and the offset after the last one.

    An unterminated last line (a writer killed mid-append, or one appending right now) is left unread.
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


class FeatureCache:
    """Features of one namespace under ``root``: lookup, buffered atomic writes, ordered bulk loads.

    Items are tensors of one shape and dtype per namespace (e.g. ``[T, D]`` frame embeddings or
    ``[1+N, C]`` tokens); the first item written fixes them. :meth:`put` buffers rows and writes a shard
    when ``shard_items`` rows or ``shard_mb`` MiB are buffered; :meth:`flush` (or leaving a ``with`` block)
    writes the rest. Buffered items are already visible to lookups in this process. Other processes'
    writes become visible on :meth:`refresh` (called by the constructor). Not thread-safe.

    Args:
        root: the cache root (holds one folder per namespace).
        namespace: everything besides the item that determines the features (see the module docstring).
        shard_items: most rows per shard.
        shard_mb: most MiB per shard (caps memory for large items such as token maps).
    """

    def __init__(self, root: str | Path, namespace: Mapping[str, Any], shard_items: int = 1024,
                 shard_mb: float = 128.0) -> None:
        if shard_items < 1 or shard_mb <= 0:
            raise CacheError(f"shard_items ({shard_items}) and shard_mb ({shard_mb}) must be positive")
        self.root = Path(root)
        self.namespace = json.loads(_canonical_json(namespace))
        self.hash = namespace_hash(namespace)
        self.path = self.root / self.hash
        self.shard_items = shard_items
        self.shard_bytes = int(shard_mb * 2**20)
        self.writer = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0
        self._item: tuple[tuple[int, ...], torch.dtype] | None = None  # (shape, dtype) of every item
        self._shards: list[_Shard] = []
        self._shard_numbers: dict[str, int] = {}
        self._where: dict[str, tuple[int, int]] = {}
        self._offsets: dict[str, int] = {}
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._check_namespace_file()
        self.refresh()

    # -- namespace folder -------------------------------------------------------------------------

    def _check_namespace_file(self) -> None:
        record = self.path / "namespace.json"
        if not record.is_file():
            return
        stored = json.loads(record.read_text(encoding="utf-8"))
        if stored.get("namespace") != self.namespace:
            raise CacheError(f"{record} describes {stored.get('namespace')}, not {self.namespace}: the folder "
                             f"was altered by hand; remove it or pass the namespace it was written with")

    def _create_folder(self) -> None:
        """Create the namespace folder: ``namespace.json`` first, so every folder with data is labelled."""
        record = self.path / "namespace.json"
        if not record.is_file():
            with atomic_path(record) as temp:
                temp.write_text(json.dumps({"format": FORMAT_VERSION, "hash": self.hash, "namespace": self.namespace},
                                           indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        for name in ("shards", "index"):
            (self.path / name).mkdir(exist_ok=True)

    # -- reading the index ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read index lines appended since the last call (by this or any other process)."""
        folder = self.path / "index"
        if not folder.is_dir():
            return
        for fragment in sorted(folder.glob("*.jsonl")):
            lines, self._offsets[fragment.name] = _read_complete_lines(fragment, self._offsets.get(fragment.name, 0))
            for number, line in enumerate(lines):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s: skipping unreadable index line %d", fragment, number)
                    continue
                self._add_record(record, fragment)

    def _add_record(self, record: dict[str, Any], source: Path) -> None:
        name, keys = record["shard"], record["keys"]
        if name in self._shard_numbers:
            return
        path = self.path / "shards" / name
        if len(keys) != record["rows"] or not path.is_file():
            log.warning("%s: shard %s is missing or disagrees with its index line; its %d items are misses",
                        source, name, len(keys))
            return
        self._check_item(tuple(record["shape"]), _parse_dtype(record["dtype"]), f"shard {path}")
        number = len(self._shards)
        self._shards.append(_Shard(path, len(keys)))
        self._shard_numbers[name] = number
        for row, key in enumerate(keys):
            self._where.setdefault(key, (number, row))

    def _check_item(self, shape: tuple[int, ...], dtype: torch.dtype, what: str) -> None:
        """Fix the namespace's item shape and dtype on first sight; refuse any other afterwards."""
        if self._item is None:
            self._item = (shape, dtype)
        elif (shape, dtype) != self._item:
            raise CacheError(f"feature cache {self.path} holds items of shape {list(self._item[0])} "
                             f"{_dtype_name(self._item[1])}, but {what} has shape {list(shape)} "
                             f"{_dtype_name(dtype)}; one namespace holds one shape — features of another shape "
                             f"are another feature: give them their own namespace (e.g. another 'feature' name)")

    # -- lookups ----------------------------------------------------------------------------------

    @property
    def item_shape(self) -> tuple[int, ...] | None:
        """The shape of one item (``None`` until an item is written or read)."""
        return None if self._item is None else self._item[0]

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of the items (``None`` until an item is written or read)."""
        return None if self._item is None else self._item[1]

    def __contains__(self, key: object) -> bool:
        return key in self._where or key in self._pending

    def __len__(self) -> int:
        return len(self._where) + sum(1 for key in self._pending if key not in self._where)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys of ``keys`` that are not cached, in their order."""
        return [key for key in keys if key not in self]

    def get(self, key: str) -> torch.Tensor | None:
        """The feature of ``key`` (``item_shape``), or ``None`` on a miss."""
        return self.load_all([key])[0] if key in self else None

    def load_all(self, keys: Sequence[str]) -> torch.Tensor:
        """The features of ``keys`` stacked in their order: ``[len(keys), *item_shape]``.

        Rows are copied straight from memory-mapped shards into the output, grouped per shard.

        Raises:
            KeyError: some keys are not cached (the message names the first few).
        """
        absent = self.missing(keys)
        if absent:
            raise KeyError(f"{len(absent)} of {len(keys)} keys are not in feature cache {self.path}, "
                           f"e.g. {absent[:3]}; extract them first")
        if self._item is None:
            raise CacheError(f"feature cache {self.path} is empty; nothing to load")
        shape, dtype = self._item
        out = torch.empty((len(keys), *shape), dtype=dtype)
        if not keys:
            return out
        rows_out = out.view(len(keys), -1).view(torch.uint8).numpy()
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for position, key in enumerate(keys):
            if key in self._where:
                shard, row = self._where[key]
                positions, rows = groups.setdefault(shard, ([], []))
                positions.append(position)
                rows.append(row)
            else:
                out[position] = self._pending[key]
        for shard, (positions, rows) in groups.items():
            data = self._map(shard, shape, dtype)
            first, start, count = rows[0], positions[0], len(rows)
            if rows == list(range(first, first + count)) and positions == list(range(start, start + count)):
                rows_out[start:start + count] = data[first:first + count]  # one run: a single copy
            else:
                rows_out[positions] = data[rows]
        return out

    def _map(self, number: int, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
        """Shard ``number``'s data as a read-only ``uint8 [rows, row_bytes]`` memory map (LRU-cached)."""
        if number in self._maps:
            self._maps.move_to_end(number)
            return self._maps[number]
        shard = self._shards[number]
        row_bytes = math.prod(shape) * dtype.itemsize
        with open(shard.path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
        entry = header.get(_TENSOR, {})
        begin, end = entry.get("data_offsets", (0, -1))
        data_start = 8 + header_size + begin
        if entry.get("shape") != [shard.rows, *shape] or end - begin != shard.rows * row_bytes or \
                shard.path.stat().st_size < data_start + end - begin:
            raise CacheError(f"{shard.path} does not hold {shard.rows} rows of {list(shape)} "
                             f"{_dtype_name(dtype)} as its index says; delete the namespace folder "
                             f"{self.path} and extract again")
        data = np.memmap(shard.path, dtype=np.uint8, mode="r", offset=data_start, shape=(shard.rows, row_bytes))
        self._maps[number] = data
        if len(self._maps) > _MAX_OPEN_SHARDS:
            self._maps.popitem(last=False)
        return data

    # -- writing ----------------------------------------------------------------------------------

    def put(self, features: Mapping[str, torch.Tensor]) -> None:
        """Add ``{key: tensor [*item_shape]}``; keys already cached are skipped (features are deterministic).

        Tensors are detached and copied to CPU. A shard is written whenever the buffer is full.

        Raises:
            CacheError: a key is not a string, a tensor is empty, or its shape/dtype differs from the
                namespace's.
        """
        for key, tensor in features.items():
            if not isinstance(key, str):
                raise CacheError(f"feature-cache keys must be strings (see item_key), got {key!r}")
            if not isinstance(tensor, torch.Tensor) or tensor.numel() == 0:
                raise CacheError(f"feature for {key!r} must be a non-empty tensor, got {tensor!r}")
            self._check_item(tuple(tensor.shape), tensor.dtype, f"the item {key!r}")
            if key in self:
                continue
            self._pending[key] = tensor.detach().to("cpu", copy=True).contiguous()
            self._pending_bytes += tensor.numel() * tensor.element_size()
            if len(self._pending) >= self.shard_items or self._pending_bytes >= self.shard_bytes:
                self.flush()

    def flush(self) -> None:
        """Write the buffered items as one shard, then append its index line (both fsynced)."""
        if not self._pending or self._item is None:
            return
        self._create_folder()
        keys = list(self._pending)
        name = f"{self.writer}-{self._sequence:06d}.safetensors"
        shard = self.path / "shards" / name
        with atomic_path(shard) as temp:
            save_file({_TENSOR: torch.stack([self._pending[key] for key in keys])}, str(temp),
                      metadata={"format": str(FORMAT_VERSION), "namespace": self.hash})
        fsync_dir(shard.parent)
        record = {"shard": name, "rows": len(keys), "shape": list(self._item[0]), "dtype": _dtype_name(self._item[1]),
                  "keys": keys}
        self._append_record(record)
        self._sequence += 1
        self._add_record(record, self.path / "index" / f"{self.writer}.jsonl")
        self._pending.clear()
        self._pending_bytes = 0
        log.debug("%s: wrote %s (%d items)", self.path, name, len(keys))

    def _append_record(self, record: dict[str, Any]) -> None:
        """Append one complete line to this writer's index fragment and fsync it."""
        fragment = self.path / "index" / f"{self.writer}.jsonl"
        created = not fragment.exists()
        line = memoryview((json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8"))
        descriptor = os.open(fragment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while line:
                line = line[os.write(descriptor, line):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if created:
            fsync_dir(fragment.parent)

    def close(self) -> None:
        """Flush and release the shard memory maps."""
        self.flush()
        self._maps.clear()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        shape = "?" if self._item is None else list(self._item[0])
        return f"FeatureCache({self.path}, items={len(self)}, shape={shape}, namespace={self.namespace})"


@dataclass(frozen=True)
class NamespaceInfo:
    """One namespace folder under a cache root."""

    hash: str
    path: Path
    namespace: dict[str, Any] | None
    size_bytes: int


def list_namespaces(root: str | Path) -> list[NamespaceInfo]:
    """The namespace folders under ``root`` with their namespace (``None`` if unlabelled) and size on disk."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _HASH_NAME.match(p.name)):
        record = folder / "namespace.json"
        namespace = json.loads(record.read_text(encoding="utf-8"))["namespace"] if record.is_file() else None
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        found.append(NamespaceInfo(folder.name, folder, namespace, size))
    return found


def _indexed_shards(folder: Path) -> set[str]:
    names: set[str] = set()
    for fragment in (folder / "index").glob("*.jsonl"):
        lines, _ = _read_complete_lines(fragment, 0)
        for line in lines:
            try:
                names.add(json.loads(line)["shard"])
            except (json.JSONDecodeError, KeyError):
                continue
    return names


def prune(root: str | Path, keep: Iterable[Mapping[str, Any] | str]) -> list[Path]:
    """Delete every namespace under ``root`` except ``keep`` (namespaces or their hashes); tidy the kept ones.

    In kept namespaces, temporary files and shards no index line names (left by kills) are deleted.
    Run it only while no process writes under ``root``: a shard being written would count as a leftover.
    Removed folders are renamed away first, so no reader sees a half-deleted namespace.

    Returns:
        The namespace folders and files removed.
    """
    root = Path(root)
    keep_hashes = {entry if isinstance(entry, str) else namespace_hash(entry) for entry in keep}
    removed: list[Path] = []
    for info in list_namespaces(root):
        if info.hash in keep_hashes:
            shards = info.path / "shards"
            indexed = _indexed_shards(info.path)
            for leftover in (shards.iterdir() if shards.is_dir() else ()):
                if leftover.name not in indexed:
                    leftover.unlink()
                    removed.append(leftover)
            continue
        trash = root / f"{_TRASH_PREFIX}{info.hash}-{uuid.uuid4().hex[:8]}"
        os.replace(info.path, trash)
        removed.append(info.path)
        log.info("pruned feature-cache namespace %s (%s, %.1f MB)", info.hash, info.namespace, info.size_bytes / 1e6)
    for trash in root.glob(f"{_TRASH_PREFIX}*") if root.is_dir() else ():
        shutil.rmtree(trash, ignore_errors=True)
    return removed
