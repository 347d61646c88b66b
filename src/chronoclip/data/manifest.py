"""The manifest: one tabular schema for every data set (DESIGN §3).

A manifest is a CSV, JSONL or Parquet table with one row per sample. Paths are relative to the
manifest's folder. Loading parses and validates every row up front and reports *all* problems at
once, with row numbers, in one :class:`~chronoclip.errors.ManifestError`.

Example:
    >>> from chronoclip.data.manifest import load_manifest        # doctest: +SKIP
    >>> m = load_manifest("data/motion/manifest.csv")             # doctest: +SKIP
    >>> train = m.split("train"); train.labels                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chronoclip.errors import ManifestError, Problem
from chronoclip.io.writers import atomic_path

#: Standard columns in canonical order (DESIGN §3). Other columns are kept as strings.
COLUMNS: tuple[str, ...] = (
    "path", "label", "text", "split", "start", "end", "timestamp", "stage", "series", "domain", "audio",
)
PATH_COLUMNS = ("path", "audio")
FLOAT_COLUMNS = ("start", "end")
NAMED_SPLITS = ("train", "val", "test")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}

Record = dict[str, Any]


@dataclass
class Manifest:
    """Parsed manifest rows with absolute paths.

    Each record is a dict: ``path`` (and ``audio``) are absolute :class:`~pathlib.Path` objects;
    ``start``/``end`` are floats (seconds) or ``None``; ``timestamp`` is a float — seconds, parsed
    from ISO 8601 (UTC) when given as a date — or ``None``; every other value is a string or ``None``.
    ``rows[i]`` is data row ``i + 1`` of the source file, which error messages use.

    Attributes:
        records: the parsed rows.
        root: the folder relative paths are resolved against (the manifest's folder).
        source: the file the rows came from, if any.
        rows: for each record, its 1-based row number in ``source``.
    """

    records: list[Record]
    root: Path
    source: Path | None = None
    rows: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = list(range(1, len(self.records) + 1))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, index: int) -> Record:
        return self.records[index]

    @property
    def name(self) -> str:
        """A short name for messages: the source file, or the root folder."""
        return str(self.source or self.root)

    @property
    def columns(self) -> list[str]:
        """Columns with at least one non-empty value, standard ones first."""
        present = {key for record in self.records for key, value in record.items() if value is not None}
        return [c for c in COLUMNS if c in present] + sorted(present - set(COLUMNS))

    @property
    def splits(self) -> list[str]:
        """The distinct split values, named splits first, then folds in numeric order."""
        values = {r["split"] for r in self.records if r.get("split") is not None}
        named = [s for s in NAMED_SPLITS if s in values]
        return named + sorted(values - set(named), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels (the class index order used everywhere)."""
        return self.distinct("label")

    def distinct(self, name: str) -> list[Any]:
        """The sorted distinct non-empty values of one column."""
        return sorted({r[name] for r in self.records if r.get(name) is not None})

    def column(self, name: str) -> list[Any]:
        """All values of one column (``None`` where empty)."""
        return [r.get(name) for r in self.records]

    def select(self, keep: Iterable[bool]) -> Manifest:
        """A manifest of the records where ``keep`` is true (row numbers are preserved)."""
        pairs = [(rec, row) for rec, row, k in zip(self.records, self.rows, keep, strict=True) if k]
        return Manifest([p[0] for p in pairs], self.root, self.source, [p[1] for p in pairs])

    def split(self, *names: str | int) -> Manifest:
        """The rows whose ``split`` is one of ``names``; a missing or empty split raises.

        Raises:
            ManifestError: no row has any of the requested splits.
        """
        wanted = {str(n) for n in names}
        subset = self.select(r.get("split") in wanted for r in self.records)
        if not subset.records:
            raise ManifestError(self.name, [Problem(
                f"no rows in split(s) {sorted(wanted)}; the splits present are {self.splits or 'none'}")],
                hint="Add a 'split' column (train/val/test or a fold number) or choose another split.")
        return subset

    def write(self, path: str | Path) -> Path:
        """Write to ``path`` (format from the suffix); see :func:`write_manifest`."""
        return write_manifest(self.records, path)


def parse_timestamp(value: Any) -> float:
    """Seconds from a number or an ISO 8601 date (naive dates are taken as UTC).

    Raises:
        ValueError: the value is neither a finite number nor an ISO 8601 date.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"'{text}' is neither seconds nor an ISO 8601 date") from exc
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            number = moment.timestamp()
    if not math.isfinite(number):
        raise ValueError(f"'{value}' is not a finite time")
    return number


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Raw rows of a CSV / JSONL / Parquet file, as dicts of column -> value."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(path, [Problem(f"unknown manifest format '{path.suffix}'")],
                            hint=f"Use one of {', '.join(FORMATS)}.")
    if kind == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return []
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
            return [dict(row) for row in reader]
    if kind == "jsonl":
        rows, problems = [], []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.append(Problem(f"invalid JSON: {exc.msg}", row=number))
                    continue
                if not isinstance(value, dict):
                    problems.append(Problem("each line must be a JSON object", row=number))
                    continue
                rows.append(value)
        if problems:
            raise ManifestError(path, problems, hint="Each line of a .jsonl manifest is one JSON object.")
        return rows
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ManifestError(path, [Problem("reading Parquet needs pyarrow")],
                            hint="pip install 'chronoclip[parquet]', or save the manifest as CSV.") from exc
    return list(pq.read_table(path).to_pylist())


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _parse_record(raw: Mapping[str, Any], root: Path, row: int, problems: list[Problem]) -> Record:
    """Normalise one raw row; append any problem found to ``problems``."""
    record: Record = {}
    for key, value in raw.items():
        key = str(key).strip()
        if _empty(value):
            record[key] = None
        elif key in PATH_COLUMNS:
            candidate = Path(str(value).strip()).expanduser()
            record[key] = Path(os.path.normpath(candidate if candidate.is_absolute() else root / candidate))
        elif key in FLOAT_COLUMNS:
            try:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError
                record[key] = number
            except (TypeError, ValueError):
                problems.append(Problem(f"'{value}' is not a non-negative number of seconds", row, key))
                record[key] = None
        elif key == "timestamp":
            try:
                record[key] = parse_timestamp(value)
            except ValueError as exc:
                problems.append(Problem(str(exc), row, key))
                record[key] = None
        else:
            record[key] = str(value).strip()
    return record


def validate_records(records: Sequence[Record], rows: Sequence[int] | None = None,
                     check_files: bool = True) -> list[Problem]:
    """Every problem of parsed records: missing paths/files, duplicates, splits, labels, time ranges.

    Args:
        records: parsed rows (see :class:`Manifest`).
        rows: the 1-based row number of each record (defaults to 1..N).
        check_files: also check that every ``path``/``audio`` file exists and is not empty.
    """
    rows = list(rows) if rows is not None else list(range(1, len(records) + 1))
    problems: list[Problem] = []
    if not records:
        return [Problem("the manifest has no rows")]
    seen: dict[tuple[Any, ...], int] = {}
    for record, row in zip(records, rows, strict=True):
        path = record.get("path")
        if path is None:
            problems.append(Problem("'path' is empty (every row needs a media file)", row, "path"))
        for column in PATH_COLUMNS:
            target = record.get(column)
            if check_files and target is not None:
                if not target.is_file():
                    problems.append(Problem(f"file not found: {target}", row, column))
                elif target.stat().st_size == 0:
                    problems.append(Problem(f"file is empty (0 bytes): {target}", row, column))
        split = record.get("split")
        if split is not None and split not in NAMED_SPLITS and not split.isdigit():
            problems.append(Problem(
                f"unknown split '{split}' (use train, val, test or a fold number)", row, "split"))
        start, end = record.get("start"), record.get("end")
        if start is not None and end is not None and end <= start:
            problems.append(Problem(f"end ({end}) must be after start ({start})", row, "end"))
        key = (path, start, end, record.get("audio"))
        if path is not None:
            if key in seen:
                problems.append(Problem(f"duplicate of row {seen[key]} (same path and time range)", row, "path"))
            else:
                seen[key] = row
    return sorted(problems, key=lambda p: (p.row or 0, p.column or ""))


def labels_missing_from_train(manifest: Manifest) -> list[Problem]:
    """Labels that occur in val / test rows but in no train row: a classifier trained on the manifest cannot
    predict them (zero-shot evaluation can, so this is checked by classification runs, not by every load)."""
    records, rows = manifest.records, manifest.rows
    train_labels = {r.get("label") for r in records if r.get("split") == "train"}
    if not train_labels - {None}:
        return []
    first_row: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for record, row in zip(records, rows, strict=True):
        label = record.get("label")
        if label is not None and record.get("split") in ("val", "test") and label not in train_labels:
            first_row.setdefault(label, row)
            counts[label] += 1
    return [Problem(f"label '{label}' appears in {counts[label]} val/test row(s) but in no train row",
                    first_row[label], "label") for label in sorted(first_row)]


def load_manifest(path: str | Path, check_files: bool = True, validate: bool = True) -> Manifest:
    """Load and validate a manifest.

    Args:
        path: a ``.csv``, ``.jsonl`` or ``.parquet`` file.
        check_files: check that every referenced file exists and is non-empty.
        validate: run :func:`validate_records`; parse errors are always reported.

    Raises:
        ManifestError: listing every problem with its row number.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ManifestError(path, [Problem("manifest file not found")],
                            hint="Write one with `chronoclip data import` or `chronoclip world`.")
    raw_rows = _read_table(path)
    if raw_rows and not any("path" in {str(k).strip() for k in r} for r in raw_rows[:1]):
        raise ManifestError(path, [Problem(f"no 'path' column (columns: {sorted(raw_rows[0])})")],
                            hint=f"Standard columns are: {', '.join(COLUMNS)}.")
    problems: list[Problem] = []
    records = [_parse_record(raw, path.parent, row, problems) for row, raw in enumerate(raw_rows, start=1)]
    if validate:
        problems += validate_records(records, check_files=check_files)
    if problems:
        problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        raise ManifestError(path, problems, hint=f"Relative paths are resolved against {path.parent}.")
    return Manifest(records, path.parent, path)


def _serialise(value: Any, folder: Path) -> Any:
    """Paths become relative to the manifest's folder (a relative ``Path`` is taken from the working directory)."""
    if isinstance(value, Path):
        absolute = os.path.abspath(value)
        try:
            return Path(os.path.relpath(absolute, folder)).as_posix()
        except ValueError:  # different drive on Windows
            return Path(absolute).as_posix()
    return value


def write_manifest(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write records atomically as CSV / JSONL / Parquet (by suffix), paths relative to the file.

    Columns present in any record are written, standard columns first; ``None`` becomes empty.
    ``Path`` values are written relative to the manifest's folder (relative ``Path`` objects are read
    from the working directory); strings are written as they are.

    Returns:
        The written path.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"unknown manifest format '{path.suffix}' for {path}; use {', '.join(FORMATS)}")
    folder = path.parent.resolve()
    present = {k for r in records for k, v in r.items() if v is not None}
    columns = [c for c in COLUMNS if c in present] + sorted(present - set(COLUMNS))
    rows = [{c: _serialise(r.get(c), folder) for c in columns} for r in records]
    with atomic_path(path) as tmp:
        if kind == "csv":
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
                writer.writeheader()
                writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        elif kind == "jsonl":
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
    return path

