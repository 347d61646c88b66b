"""What every importer shares: the :class:`Importer` record, option parsing, problem collection,
list/CSV readers that number their lines, and the deterministic group split.

An importer's ``read(root, options, log)`` walks the official files and calls :meth:`ImportLog.add`
for each sample, :meth:`ImportLog.problem` for each thing that is wrong and :meth:`ImportLog.skip`
for each sample that cannot be used (missing media, ...), always with the input file and line it
came from. :meth:`ImportLog.finish` then checks the
media files and raises one :class:`~chronoclip.errors.ManifestError` listing everything, so a user
fixes all problems in one pass instead of one per run.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, overload

from chronoclip.errors import ConfigError, ManifestError, Problem

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLIT_NAMES = ("train", "val", "test")

Record = dict[str, Any]


@dataclass(frozen=True)
class SourceProblem(Problem):
    """A problem located in an input file: ``row`` is the 1-based *line* of ``file`` (``None`` when the
    problem concerns the whole file or a media file itself)."""

    file: str = ""

    def __str__(self) -> str:
        return f"{Origin(self.file, self.row)}: {self.message}"


@dataclass(frozen=True)
class Origin:
    """Where a sample or a problem comes from: an input file (as shown to the user) and a line."""

    file: str
    line: int | None = None

    def problem(self, message: str) -> SourceProblem:
        return SourceProblem(message, self.line, file=self.file)

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file} line {self.line}"


class ImportLog:
    """Collects the samples and the problems of one import (see the module docstring).

    Attributes:
        root: the data root; media paths and input files are shown relative to it.
        rows: ``(record, origin)`` per sample, in input order; records hold absolute paths.
        problems: problems that always fail the import (malformed lines, unknown classes, ...).
        unusable: problems that make one sample unusable (missing or empty media, no capture time);
            the import skips these samples when ``allow_missing`` is set.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: list[tuple[Record, Origin]] = []
        self.problems: list[SourceProblem] = []
        self.unusable: list[SourceProblem] = []

    def show(self, path: Path) -> str:
        """``path`` relative to the root when it lies inside it (as users see it), else absolute."""
        try:
            relative = path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
        return relative if relative != "." else str(path)

    def origin(self, path: Path, line: int | None = None) -> Origin:
        return Origin(self.show(path), line)

    def problem(self, origin: Origin, message: str) -> None:
        self.problems.append(origin.problem(message))

    def skip(self, origin: Origin, message: str) -> None:
        """Record that the sample at ``origin`` is unusable (skipped under ``allow_missing``)."""
        self.unusable.append(origin.problem(message))

    def add(self, origin: Origin, **record: Any) -> None:
        """One sample; ``path``/``audio`` are absolute paths, ``None`` values are left empty."""
        self.rows.append((record, origin))

    def finish(self, allow_missing: bool, hint: str = "") -> tuple[list[Record], list[SourceProblem]]:
        """Check media files and duplicates; return ``(records, skipped)`` or raise every problem.

        Raises:
            ManifestError: there are problems, unusable samples without ``allow_missing``, or no samples.
        """
        kept = self._check_rows()
        problems = sorted(self.problems + ([] if allow_missing else self.unusable),
                          key=lambda p: (p.file, p.row or 0))
        if not problems and not kept:
            problems = [SourceProblem("no samples found", file=str(self.root))]
        if problems:
            if self.unusable and not allow_missing:
                hint = (hint + "\n" if hint else "") + (
                    f"{len(self.unusable)} sample(s) are unusable (missing media, ...); "
                    "pass allow_missing=True (--allow-missing) to skip them.")
            raise ManifestError(self.root, problems, hint=hint)
        return kept, list(self.unusable)

    def _check_rows(self) -> list[Record]:
        """The records whose media files exist and are not empty; the others become unusable
        samples, and repeated samples become problems."""
        kept: list[Record] = []
        seen: dict[tuple[Any, ...], Origin] = {}
        for record, origin in self.rows:
            usable = True
            for column in ("path", "audio"):
                target = record.get(column)
                if target is None:
                    continue
                if not target.is_file():
                    self.skip(origin, f"{column} not found: {self.show(target)}")
                    usable = False
                elif target.stat().st_size == 0:
                    self.skip(origin, f"{column} is empty (0 bytes): {self.show(target)}")
                    usable = False
            if usable:
                kept.append(record)
            key = (record.get("path"), record.get("start"), record.get("end"), record.get("audio"))
            if key in seen:
                self.problem(origin, f"duplicate of {seen[key]} ({self.show(record['path'])})")
            else:
                seen[key] = origin
        return kept


def read_lines(path: Path, log: ImportLog) -> Iterator[tuple[Origin, str]]:
    """Non-blank lines of a text file, stripped, with their origins (tolerates a BOM and CRLF).

    A missing file is reported as a problem and yields nothing.
    """
    if not path.is_file():
        log.problem(log.origin(path), "file not found")
        return
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text:
                yield log.origin(path, number), text


ListEntry = tuple[Origin, str, int]
OptionalListEntry = tuple[Origin, str, int | None]


@overload
def read_list(path: Path, log: ImportLog, number_required: Literal[True]) -> Iterator[ListEntry]: ...
@overload
def read_list(path: Path, log: ImportLog, number_required: bool) -> Iterator[OptionalListEntry]: ...
def read_list(path: Path, log: ImportLog, number_required: bool) -> Iterator[OptionalListEntry]:
    """Entries ``<relative/path> [<integer>]`` of a split list (UCF101, HMDB51, DomainNet, PACS).

    With ``number_required`` a line without a trailing integer is reported and skipped; otherwise a
    line whose last field is not an integer is all path. Paths may contain spaces.
    """
    for origin, text in read_lines(path, log):
        parts = text.rsplit(maxsplit=1)
        number = _integer(parts[-1]) if len(parts) == 2 else None
        if number is not None:
            yield origin, parts[0], number
        elif number_required:
            log.problem(origin, f"expected '<path> <integer>', got '{text}'")
        else:
            yield origin, text, None


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def read_csv(path: Path, log: ImportLog, required: Sequence[str]) -> Iterator[tuple[Origin, dict[str, str]]]:
    """Rows of a CSV file with a header, values stripped, with their origins (line 1 is the header).

    A missing file, a header without the ``required`` columns, and rows with the wrong number of
    fields are reported as problems; the bad rows are skipped.
    """
    if not path.is_file():
        log.problem(log.origin(path), "file not found")
        return
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            log.problem(log.origin(path, 1), f"missing column(s) {missing}; the header is {header}")
            return
        reader.fieldnames = header
        for row in reader:
            origin = log.origin(path, reader.line_num)
            if None in row or None in row.values():
                log.problem(origin, f"expected {len(header)} comma-separated fields")
                continue
            yield origin, {key: value.strip() for key, value in row.items()}


def assign_splits(keys: Iterable[str], ratios: Sequence[float], seed: int = 0) -> dict[str, str]:
    """Deterministically put each key (a series, a file, ...) into train / val / test.

    Keys are ranked by the SHA-256 of ``"{seed}:{key}"``, and the ranking is cut in proportion to
    ``ratios`` (train, val, test; normalised to sum 1) with largest-remainder rounding, so the counts
    add up and every split with a positive ratio gets at least one key when there are enough keys.
    Ranking instead of thresholding each hash keeps small collections balanced (with 10 series,
    independent 15 % draws would leave val empty one time in five); the price is that adding a key
    can move others.
    """
    check_ratios(ratios)
    ranked = sorted(set(keys), key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    counts = _apportion(len(ranked), ratios)
    names = [name for name, count in zip(SPLIT_NAMES, counts, strict=True) for _ in range(count)]
    return dict(zip(ranked, names, strict=True))


def _apportion(total: int, ratios: Sequence[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``ratios`` (largest remainder, min 1 each)."""
    weights = [r / sum(ratios) for r in ratios]
    exact = [total * w for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    for i, weight in enumerate(weights):
        if weight > 0 and counts[i] == 0 and max(counts) > 1:
            counts[i] += 1
            counts[counts.index(max(counts))] -= 1
    return counts


def check_ratios(ratios: Sequence[float]) -> None:
    """Raise :class:`ConfigError` unless ``ratios`` are three non-negative numbers with a positive sum."""
    if len(ratios) != len(SPLIT_NAMES) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ConfigError(f"ratios must be three non-negative numbers (train, val, test), "
                          f"got {tuple(ratios)}")


@dataclass(frozen=True)
class Importer:
    """One data-set format: how to turn its official layout into manifest records.

    Attributes:
        name: the format name used by :func:`~chronoclip.data.formats.import_dataset` and the CLI.
        summary: one line for listings.
        options: a frozen dataclass of this format's options (field metadata ``help``); its
            ``__post_init__`` validates values.
        read: ``read(root, options, log)`` fills the :class:`ImportLog`.
        hint: what to check when the import fails (shown under the list of problems).
    """

    name: str
    summary: str
    options: type
    read: Callable[[Path, Any, ImportLog], None]
    hint: str = ""

    def option_help(self) -> dict[str, str]:
        """``{option: help text}`` for every option, in declaration order, with its default as typed
        on the command line (unless the text already explains the default)."""
        helps = {}
        for spec in fields(self.options):
            text = spec.metadata.get("help", "")
            default = ",".join(map(str, spec.default)) if isinstance(spec.default, tuple) else spec.default
            helps[spec.name] = text if "default:" in text else f"{text} (default: {default})"
        return helps

    def parse_options(self, given: Mapping[str, Any]) -> Any:
        """Build the options object; string values (from the CLI) are converted to the field types.

        Raises:
            ConfigError: an unknown option, or a value that does not convert or validate.
        """
        hints = get_type_hints(self.options)
        unknown = sorted(set(given) - set(hints))
        if unknown:
            valid = ", ".join(f"{name} ({text})" for name, text in self.option_help().items()) or "none"
            raise ConfigError(f"unknown option(s) {unknown} for format '{self.name}'; valid options: {valid}")
        return self.options(**{name: convert(value, hints[name], name) for name, value in given.items()})


def convert(value: Any, hint: Any, name: str) -> Any:
    """Convert ``value`` (often a CLI string) to the type ``hint``: bool, int, float, str, Path,
    ``X | None`` (``""``/``"none"`` is None) or ``tuple[X, ...]`` (a comma-separated string)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return convert(value, inner, name)
    if origin is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        return tuple(convert(item, get_args(hint)[0], name) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option '{name}' must be true or false, got '{value}'")
    if hint is Path:
        return Path(os.path.expanduser(str(value)))
    try:
        return hint(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"option '{name}' must be {hint.__name__}, got '{value}'") from exc
