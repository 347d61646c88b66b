"""Kinetics (400 / 600 / 700) from the official annotation CSVs.

Annotations: ``kinetics_{train,val,test}.csv`` (or ``train.csv`` ...) with the columns
``label,youtube_id,time_start,time_end,split`` (test files may lack ``label``; files without a
``split`` column take it from their name). Videos are found anywhere under ROOT by file name:
either the trimmed clip ``{youtube_id}_{start:06d}_{end:06d}.mp4`` (any common video extension) or
the full video ``{youtube_id}.mp4``, in which case the row keeps ``start``/``end`` in seconds.

Missing videos are normal for Kinetics (YouTube takedowns): they are listed like any other problem,
and ``allow_missing=True`` skips them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from chronoclip.data.formats.common import VIDEO_EXTENSIONS, Importer, ImportLog, Origin, read_csv

logger = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validate": "val", "validation": "val",
                 "test": "test"}
_SPLIT_IN_NAME = re.compile(r"(?:^|[_\-.])(train|val|valid|validate|validation|test)(?:$|[_\-.])")


@dataclass(frozen=True)
class KineticsOptions:
    """Options of the ``kinetics`` importer (see ``IMPORTER.option_help()``)."""

    annotations: Path | None = field(default=None, metadata={
        "help": "an annotation CSV or a folder of them (default: ROOT/annotations, else the CSVs in ROOT)"})


def annotation_files(root: Path, given: Path | None, log: ImportLog) -> list[Path]:
    """The annotation CSVs to read; reports a problem if there are none."""
    folder = given.resolve() if given else (root / "annotations" if (root / "annotations").is_dir() else root)
    files = [folder] if folder.is_file() else sorted(folder.glob("*.csv"))
    if not files:
        log.problem(log.origin(folder), "no annotation CSV found (pass annotations=FILE_OR_DIR)")
    return files


def index_videos(root: Path) -> dict[str, Path]:
    """Every video file under ``root`` by name without extension (first in sorted order wins)."""
    index: dict[str, Path] = {}
    repeated = 0
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            stem, extension = os.path.splitext(name)
            if extension.lower() in VIDEO_EXTENSIONS:
                if stem in index:
                    repeated += 1
                else:
                    index[stem] = Path(folder) / name
    if repeated:
        logger.warning("%d video file name(s) occur more than once under %s; the first one is used",
                       repeated, root)
    return index


def read(root: Path, options: KineticsOptions, log: ImportLog) -> None:
    """Fill ``log`` with one row per annotation line."""
    files = annotation_files(root, options.annotations, log)
    videos = index_videos(root) if files else {}
    for path in files:
        match = _SPLIT_IN_NAME.search(path.stem.lower())
        default_split = match.group(1) if match else ""
        for origin, row in read_csv(path, log, required=("youtube_id", "time_start", "time_end")):
            _add_row(origin, row, default_split, videos, log)


def _add_row(origin: Origin, row: dict[str, str], default_split: str, videos: dict[str, Path],
             log: ImportLog) -> None:
    split_text = row.get("split") or default_split
    split = SPLIT_ALIASES.get(split_text.lower())
    label = row.get("label") or None
    youtube_id = row["youtube_id"]
    try:
        start, end = float(row["time_start"]), float(row["time_end"])
    except ValueError:
        log.problem(origin, f"time_start and time_end must be numbers, "
                            f"got '{row['time_start']}' and '{row['time_end']}'")
        return
    if split is None:
        log.problem(origin, f"unknown split '{split_text}' (expected train, val/validate or test)")
    elif not youtube_id:
        log.problem(origin, "empty youtube_id")
    elif label is None and split != "test":
        log.problem(origin, f"a {split} row needs a label")
    else:
        clip = f"{youtube_id}_{int(start):06d}_{int(end):06d}"
        if clip in videos:
            log.add(origin, path=videos[clip], label=label, split=split)
        elif youtube_id in videos:
            log.add(origin, path=videos[youtube_id], label=label, split=split, start=start, end=end)
        else:
            log.skip(origin, f"video not found under the data root: {clip}.mp4 (or {youtube_id}.mp4)")


IMPORTER = Importer(
    name="kinetics",
    summary="Kinetics-400/600/700 annotation CSVs + videos found anywhere under ROOT",
    options=KineticsOptions,
    read=read,
    hint="Videos are looked up by name ({youtube_id}_{start:06d}_{end:06d}.* or {youtube_id}.*) under ROOT.",
)
