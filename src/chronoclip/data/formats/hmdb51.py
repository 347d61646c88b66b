"""HMDB51 with its official split files (``test_train_splits.rar``).

Layout::

    ROOT/<class>/<video>.avi
    SPLITS/<class>_test_split{1,2,3}.txt     "<video>.avi 1"   (1 train, 2 test, 0 unused)

Output rows: ``path``, ``label`` (the class, from the split file's name), ``split`` (train / test);
videos marked 0 (unused in that split) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chronoclip.data.formats.common import Importer, ImportLog, read_list
from chronoclip.errors import ConfigError

SPLIT_FLAGS = {1: "train", 2: "test"}


@dataclass(frozen=True)
class HMDB51Options:
    """Options of the ``hmdb51`` importer (see ``IMPORTER.option_help()``)."""

    splits: Path | None = field(default=None, metadata={
        "help": "folder with <class>_test_split{1,2,3}.txt (default: ROOT/testTrainMulti_7030_splits)"})
    split: int = field(default=1, metadata={"help": "official split: 1, 2 or 3"})

    def __post_init__(self) -> None:
        if self.split not in (1, 2, 3):
            raise ConfigError(f"HMDB51 has splits 1, 2 and 3, got split={self.split}")


def read(root: Path, options: HMDB51Options, log: ImportLog) -> None:
    """Fill ``log`` with the train and test rows of the chosen split."""
    splits = options.splits.resolve() if options.splits else root / "testTrainMulti_7030_splits"
    suffix = f"_test_split{options.split}.txt"
    files = sorted(splits.glob(f"*{suffix}")) if splits.is_dir() else []
    if not files:
        log.problem(log.origin(splits), f"no '<class>{suffix}' files here")
        return
    for path in files:
        label = path.name[: -len(suffix)]
        if not (root / label).is_dir():
            log.problem(log.origin(path), f"unknown class '{label}': no folder {label}/ under the data root")
            continue
        for origin, video, flag in read_list(path, log, number_required=True):
            if flag == 0:
                continue
            if flag not in SPLIT_FLAGS or "/" in video:
                log.problem(origin, f"expected '<video>.avi <0|1|2>' (0 unused, 1 train, 2 test), "
                                    f"got '{video} {flag}'")
                continue
            log.add(origin, path=root / label / video, label=label, split=SPLIT_FLAGS[flag])


IMPORTER = Importer(
    name="hmdb51",
    summary="HMDB51 videos + official <class>_test_split{1,2,3}.txt files",
    options=HMDB51Options,
    read=read,
    hint="ROOT holds <class>/<video>.avi; pass splits=DIR for the folder of <class>_test_splitN.txt files.",
)
