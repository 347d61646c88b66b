"""UCF101 with its official split lists (``UCF101TrainTestSplits-RecognitionTask.zip``).

Layout::

    ROOT/[UCF-101/]<Class>/v_<Class>_gXX_cYY.avi
    SPLITS/classInd.txt        "1 ApplyEyeMakeup"                               (1-based)
    SPLITS/trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"  (class index)
    SPLITS/testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"    (class from the folder)

Output rows: ``path``, ``label`` (the class name), ``split`` (train / test of split N).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from chronoclip.data.formats.common import Importer, ImportLog, Origin, read_lines, read_list
from chronoclip.errors import ConfigError


@dataclass(frozen=True)
class UCF101Options:
    """Options of the ``ucf101`` importer (see ``IMPORTER.option_help()``)."""

    splits: Path | None = field(default=None, metadata={
        "help": "folder with classInd.txt, trainlist0N.txt, testlist0N.txt (default: ROOT/ucfTrainTestlist)"})
    split: int = field(default=1, metadata={"help": "official split: 1, 2 or 3"})

    def __post_init__(self) -> None:
        if self.split not in (1, 2, 3):
            raise ConfigError(f"UCF101 has splits 1, 2 and 3, got split={self.split}")


def read_class_index(path: Path, log: ImportLog) -> dict[int, str]:
    """``classInd.txt`` as ``{index: class name}``; malformed or repeated lines are reported."""
    classes: dict[int, str] = {}
    for origin, text in read_lines(path, log):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            log.problem(origin, f"expected '<index> <ClassName>', got '{text}'")
        elif int(parts[0]) in classes or parts[1] in classes.values():
            log.problem(origin, f"class index or name repeated: '{text}'")
        else:
            classes[int(parts[0])] = parts[1]
    return classes


def read(root: Path, options: UCF101Options, log: ImportLog) -> None:
    """Fill ``log`` with the train and test rows of the chosen split."""
    videos = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    splits = options.splits.resolve() if options.splits else root / "ucfTrainTestlist"
    classes = read_class_index(splits / "classInd.txt", log)
    if not classes:
        return
    names = set(classes.values())
    for split, required in (("train", True), ("test", False)):
        for origin, relative, index in read_list(splits / f"{split}list0{options.split}.txt", log, required):
            label = _label(origin, relative, index, classes, names, log)
            if label is not None:
                log.add(origin, path=videos / relative, label=label, split=split)


def _label(origin: Origin, relative: str, index: int | None, classes: dict[int, str], names: set[str],
           log: ImportLog) -> str | None:
    """The class of one list entry, checked against its folder and its index; ``None`` if wrong."""
    parts = PurePosixPath(relative).parts
    if len(parts) != 2:
        log.problem(origin, f"expected '<Class>/<video>.avi', got '{relative}'")
        return None
    folder = parts[0]
    if folder not in names:
        log.problem(origin, f"unknown class '{folder}' (not in classInd.txt)")
        return None
    if index is not None and index not in classes:
        log.problem(origin, f"class index {index} is not in classInd.txt ({min(classes)}..{max(classes)})")
        return None
    if index is not None and classes[index] != folder:
        log.problem(origin, f"class index {index} is '{classes[index]}' but the video is in '{folder}/'")
        return None
    return folder


IMPORTER = Importer(
    name="ucf101",
    summary="UCF101 videos + official train/test lists (3 splits)",
    options=UCF101Options,
    read=read,
    hint="ROOT holds <Class>/v_*.avi (or UCF-101/<Class>/...); splits=DIR names the ucfTrainTestlist folder.",
)
