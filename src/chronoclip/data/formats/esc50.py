"""ESC-50 (environmental sounds) with its five official folds.

Layout::

    ROOT/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
    ROOT/audio/<filename>.wav

Output rows: ``path``, ``label`` (the category), ``split`` (the fold, 1-5; evaluate by 5-fold
cross-validation over folds, never by random splits, since clips cut from one recording share a
fold), and ``esc10`` (True / False) as an extra column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chronoclip.data.formats.common import Importer, ImportLog, read_csv

FOLDS = ("1", "2", "3", "4", "5")
BOOLEANS = {"true": "True", "false": "False"}


@dataclass(frozen=True)
class ESC50Options:
    """Options of the ``esc50`` importer (see ``IMPORTER.option_help()``)."""

    esc10_only: bool = field(default=False, metadata={"help": "keep only the ESC-10 subset (esc10 == True)"})


def read(root: Path, options: ESC50Options, log: ImportLog) -> None:
    """Fill ``log`` with one row per line of ``meta/esc50.csv``."""
    required = ("filename", "fold", "category", "esc10")
    for origin, row in read_csv(root / "meta" / "esc50.csv", log, required):
        esc10 = BOOLEANS.get(row["esc10"].lower())
        if row["fold"] not in FOLDS:
            log.problem(origin, f"fold must be 1-5, got '{row['fold']}'")
        elif not row["filename"] or not row["category"]:
            log.problem(origin, "empty filename or category")
        elif esc10 is None:
            log.problem(origin, f"esc10 must be True or False, got '{row['esc10']}'")
        elif esc10 == "True" or not options.esc10_only:
            log.add(origin, path=root / "audio" / row["filename"], label=row["category"], split=row["fold"],
                    esc10=esc10)


IMPORTER = Importer(
    name="esc50",
    summary="ESC-50 meta/esc50.csv + audio/*.wav, split = official fold 1-5",
    options=ESC50Options,
    read=read,
    hint="ROOT is the ESC-50 folder with meta/esc50.csv and audio/.",
)
