"""A folder of time-lapse photos: capture times, series, stages and a series-level split.

Layout: ``ROOT/<series>/.../<image>`` (one subfolder per series), or images anywhere under ROOT with
the series taken from a ``series`` group of a regex ``pattern``; images directly in ROOT form one
series named after ROOT.

Capture time: EXIF ``DateTimeOriginal`` (fallback ``DateTime``, with ``OffsetTimeOriginal`` when
present), or the file name parsed with ``pattern`` -- either strftime-style (``IMG_%Y%m%d_%H%M%S``;
directives %Y %m %d %H %M %S, searched anywhere in the name) or a regex with named groups ``year``,
``month``, ``day`` and optionally ``hour``, ``minute``, ``second`` and ``series``. Images without a
readable time are reported (and skipped under ``allow_missing``).

Stages (optional CSV, ``stages=FILE``): either ``path,stage`` (paths relative to ROOT) or
``series,start,stage`` boundaries, where a stage holds from its start time (ISO 8601 or seconds)
until the next boundary of the same series.

Notes (optional CSV, ``notes=FILE``): ``series,text`` (one note per series, e.g. the incubation
conditions) or ``path,text`` (per image); they become the ``text`` column ``cliptime`` reads. Notes must
not state the time or the stage (a text-only model would then solve the task: spec C.6).

Output rows: ``path``, ``timestamp`` (ISO 8601), ``series``, ``stage``, ``text``, ``split`` -- whole series go
to train / val / test (see :func:`~chronoclip.data.formats.common.assign_splits`), so no series is
on both sides.
"""

from __future__ import annotations

import bisect
import csv
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from chronoclip.data.formats.common import (
    IMAGE_EXTENSIONS,
    Importer,
    ImportLog,
    Origin,
    assign_splits,
    check_ratios,
    read_csv,
)
from chronoclip.data.manifest import parse_timestamp
from chronoclip.errors import ConfigError

logger = logging.getLogger(__name__)

TIME_SOURCES = ("auto", "exif", "filename")
DIRECTIVES = {"Y": r"(?P<year>\d{4})", "m": r"(?P<month>\d{2})", "d": r"(?P<day>\d{2})",
              "H": r"(?P<hour>\d{2})", "M": r"(?P<minute>\d{2})", "S": r"(?P<second>\d{2})", "%": "%"}
EXIF_TIME = "%Y:%m:%d %H:%M:%S"
TIME_GROUPS = ("year", "month", "day", "hour", "minute", "second")


@dataclass(frozen=True)
class TimelapseOptions:
    """Options of the ``timelapse`` importer (see ``IMPORTER.option_help()``)."""

    pattern: str | None = field(default=None, metadata={
        "help": "capture time in the file name: strftime-style ('IMG_%Y%m%d_%H%M%S') or a regex with groups "
                "year, month, day[, hour, minute, second, series]"})
    time_source: str = field(default="auto", metadata={
        "help": "where times come from: auto (EXIF, then the file name), exif, filename"})
    stages: Path | None = field(default=None, metadata={
        "help": "CSV of stages: 'path,stage' or 'series,start,stage' boundaries"})
    notes: Path | None = field(default=None, metadata={
        "help": "CSV of notes (the text column): 'series,text' or 'path,text'"})
    ratios: tuple[float, ...] = field(default=(0.7, 0.15, 0.15), metadata={
        "help": "train,val,test shares of the series"})
    seed: int = field(default=0, metadata={"help": "seed of the series split"})

    def __post_init__(self) -> None:
        if self.time_source not in TIME_SOURCES:
            raise ConfigError(f"time_source must be one of {TIME_SOURCES}, got '{self.time_source}'")
        if self.time_source == "filename" and not self.pattern:
            raise ConfigError("time_source='filename' needs a pattern")
        check_ratios(self.ratios)
        compile_pattern(self.pattern)


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """A regex for ``pattern`` (strftime-style patterns are translated); validates its groups.

    Raises:
        ConfigError: an unsupported directive, an invalid regex, or missing year/month/day groups.
    """
    if pattern is None:
        return None
    if "(?P<" not in pattern:
        pieces = re.split(r"(%.)", pattern)
        unknown = [p for p in pieces[1::2] if p[1] not in DIRECTIVES]
        if unknown:
            raise ConfigError(f"pattern '{pattern}': unsupported directive(s) {unknown}; "
                              f"use %Y %m %d %H %M %S or a regex with named groups")
        pattern = "".join(DIRECTIVES[p[1]] if i % 2 else re.escape(p) for i, p in enumerate(pieces))
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"pattern '{pattern}' is not a valid regex: {exc}") from exc
    missing = {"year", "month", "day"} - set(compiled.groupindex)
    if missing:
        raise ConfigError(f"pattern '{pattern}' needs groups (or directives) for {sorted(missing)}")
    return compiled


def exif_time(path: Path) -> datetime | None:
    """EXIF ``DateTimeOriginal`` (else ``DateTime``) of an image, with its UTC offset if recorded."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except (OSError, UnidentifiedImageError):
        return None
    details = exif.get_ifd(ExifTags.IFD.Exif)
    text = details.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.strptime(text.strip("\x00 "), EXIF_TIME)
    except ValueError:
        return None
    offset = details.get(ExifTags.Base.OffsetTimeOriginal)
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(offset).strip("\x00 ")) if offset else None
    if match:
        sign = 1 if match[1] == "+" else -1
        moment = moment.replace(tzinfo=timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3]))))
    return moment


def name_time(match: re.Match[str] | None) -> datetime | None:
    """The time encoded in a file name matched by the ``pattern`` regex, if valid."""
    if match is None:
        return None
    parts = match.groupdict()
    try:
        year, month, day, hour, minute, second = (int(parts.get(key) or 0) for key in TIME_GROUPS)
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


@dataclass
class _Photo:
    path: Path
    origin: Origin
    series: str
    time: datetime
    stage: str | None = None
    text: str | None = None


def read(root: Path, options: TimelapseOptions, log: ImportLog) -> None:
    """Fill ``log`` with one row per image that has a capture time."""
    photos = _find_photos(root, options, log)
    if options.stages:
        _assign_stages(options.stages.resolve(), photos, log)
    if options.notes:
        _assign_notes(options.notes.resolve(), photos, log)
    splits = assign_splits({p.series for p in photos}, options.ratios, options.seed)
    for photo in photos:
        log.add(photo.origin, path=photo.path, timestamp=photo.time.isoformat(), series=photo.series,
                stage=photo.stage, text=photo.text, split=splits[photo.series])


def _find_photos(root: Path, options: TimelapseOptions, log: ImportLog) -> list[_Photo]:
    pattern = compile_pattern(options.pattern)
    photos = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.suffix.lower() not in IMAGE_EXTENSIONS or any(p.startswith(".") for p in relative.parts):
            continue
        match = pattern.search(path.name) if pattern else None
        time = exif_time(path) if options.time_source != "filename" else None
        if time is None and options.time_source != "exif":
            time = name_time(match)
        origin = log.origin(path)
        if time is None:
            log.skip(origin, f"no readable capture time ({_why_no_time(options.time_source, pattern)})")
            continue
        series = (match.groupdict().get("series") if match else None) or (
            relative.parts[0] if len(relative.parts) > 1 else root.name)
        photos.append(_Photo(path, origin, series, time))
    return photos


def _why_no_time(source: str, pattern: re.Pattern[str] | None) -> str:
    reasons = []
    if source != "filename":
        reasons.append("no EXIF DateTimeOriginal or DateTime")
    if source != "exif":
        reasons.append("the file name does not match the pattern" if pattern else "no name pattern given")
    return "; ".join(reasons)


def _assign_stages(csv_path: Path, photos: list[_Photo], log: ImportLog) -> None:
    """Set ``stage`` from a ``path,stage`` or a ``series,start,stage`` CSV (chosen by its header)."""
    if {"series", "start", "stage"} <= _header(csv_path):
        _assign_stage_boundaries(csv_path, photos, log)
    else:
        by_path = {log.show(p.path): p for p in photos}
        for origin, row in read_csv(csv_path, log, required=("path", "stage")):
            photo = by_path.get(row["path"])
            if photo is None:
                log.problem(origin, f"no image with a capture time at '{row['path']}' (relative to ROOT)")
            else:
                photo.stage = row["stage"] or None
    unstaged = sum(p.stage is None for p in photos)
    if unstaged:
        logger.warning("%d of %d image(s) have no stage in %s", unstaged, len(photos), csv_path)


def _assign_notes(csv_path: Path, photos: list[_Photo], log: ImportLog) -> None:
    """Set ``text`` from a ``series,text`` or a ``path,text`` CSV (chosen by its header)."""
    key = "series" if "series" in _header(csv_path) else "path"
    targets: dict[str, list[_Photo]] = defaultdict(list)
    for photo in photos:
        targets[photo.series if key == "series" else log.show(photo.path)].append(photo)
    for origin, row in read_csv(csv_path, log, required=(key, "text")):
        if row[key] not in targets:
            log.problem(origin, f"no {'series' if key == 'series' else 'image with a capture time'} '{row[key]}'")
        for photo in targets.get(row[key], []):
            photo.text = row["text"] or None


def _header(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return {name.strip() for name in next(csv.reader(handle), [])}


def _assign_stage_boundaries(csv_path: Path, photos: list[_Photo], log: ImportLog) -> None:
    """Each photo gets the stage of the last boundary of its series at or before its time."""
    boundaries: dict[str, list[tuple[float, str]]] = defaultdict(list)
    series_names = {p.series for p in photos}
    for origin, row in read_csv(csv_path, log, required=("series", "start", "stage")):
        try:
            start = parse_timestamp(row["start"])
        except ValueError as exc:
            log.problem(origin, f"start: {exc}")
            continue
        if row["series"] not in series_names:
            log.problem(origin, f"unknown series '{row['series']}' (series found: {sorted(series_names)})")
        else:
            boundaries[row["series"]].append((start, row["stage"]))
    for bounds in boundaries.values():
        bounds.sort()
    starts = {series: [start for start, _ in bounds] for series, bounds in boundaries.items()}
    for photo in photos:
        # Same convention as manifests: a time without a UTC offset is taken as UTC.
        position = bisect.bisect_right(starts.get(photo.series, []), parse_timestamp(photo.time.isoformat()))
        photo.stage = boundaries[photo.series][position - 1][1] if position else None


IMPORTER = Importer(
    name="timelapse",
    summary="a folder of time-lapse photos: EXIF/file-name times, stages CSV, series-level split",
    options=TimelapseOptions,
    read=read,
    hint="Times come from EXIF DateTimeOriginal/DateTime or pattern=...; one subfolder per series.",
)
