"""Multi-domain image sets: DomainNet (and PACS) list files, or a ``<domain>/<class>/`` folder tree.

List layout (DomainNet's cleaned lists, TLlib's ``image_list/``, PACS's ``*_kfold.txt``)::

    LISTS/{domain}_{train,test}.txt      "clipart/aircraft_carrier/clipart_001_000018.jpg 0"
    ROOT/clipart/aircraft_carrier/clipart_001_000018.jpg

Paths in the lists are relative to ROOT; the label is the image's folder name, and each class
index must always name the same folder. PACS-style names ``{domain}_{train,crossval,test}_kfold.txt``
are accepted too (crossval becomes val).

Tree layout (Office-31, Office-Home, PACS images without lists): ``ROOT/<domain>/.../<class>/<image>``;
every image is ``train`` unless ``holdout`` puts a fraction of each domain's classes in ``test``.

Captions (for TRUST / LaGTrAn, which pseudo-label target images from them): ``captions=FILE`` names a CSV
with columns ``path,text`` (paths relative to ROOT, as in the lists); each image's caption goes into the
``text`` column. Images without one are reported (a warning with their count and the first few) and keep an
empty ``text``; a caption of an image the import does not hold is a problem.

Output rows: ``path``, ``label``, ``split``, ``domain`` (and ``text`` with ``captions``).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from chronoclip.data.formats.common import (
    IMAGE_EXTENSIONS,
    Importer,
    ImportLog,
    Origin,
    assign_splits,
    read_csv,
    read_list,
)
from chronoclip.errors import ConfigError

logger = logging.getLogger(__name__)

LIST_NAME = re.compile(r"^(?P<domain>.+?)_(?P<split>train|val|crossval|test)(?:_kfold)?\.txt$")
LIST_SPLITS = {"train": "train", "val": "val", "crossval": "val", "test": "test"}


@dataclass(frozen=True)
class DomainNetOptions:
    """Options of the ``domainnet`` importer (see ``IMPORTER.option_help()``)."""

    lists: Path | None = field(default=None, metadata={
        "help": "folder with {domain}_{train,test}.txt lists (default: ROOT/image_list if present, "
                "else ROOT); without list files the <domain>/<class>/ folder tree is read"})
    domains: tuple[str, ...] = field(default=(), metadata={
        "help": "only these domains, e.g. 'clipart,real' (default: all)"})
    holdout: float = field(default=0.0, metadata={
        "help": "tree layout only: fraction of each domain's classes put in 'test'"})
    seed: int = field(default=0, metadata={"help": "seed of the holdout assignment"})
    captions: Path | None = field(default=None, metadata={
        "help": "CSV with columns path,text (paths relative to ROOT): each image's caption, in the text column"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"holdout must be in [0, 1), got {self.holdout}")


def read(root: Path, options: DomainNetOptions, log: ImportLog) -> None:
    """Fill ``log`` from the list files if there are any, else from the folder tree."""
    folder = options.lists.resolve() if options.lists else (
        root / "image_list" if (root / "image_list").is_dir() else root)
    matches = ((path, LIST_NAME.match(path.name)) for path in sorted(folder.glob("*.txt")))
    lists = {path: match for path, match in matches if match}
    if lists:
        _read_lists(root, folder, lists, options.domains, log)
    elif options.lists:
        log.problem(log.origin(folder), "no {domain}_{train,test}.txt list files here")
    else:
        logger.info("no {domain}_{split}.txt lists in %s; reading the <domain>/<class>/ folder tree", folder)
        _read_tree(root, options, log)
    if options.captions:
        _add_captions(root, options.captions, log)


def _add_captions(root: Path, captions: Path, log: ImportLog) -> None:
    """Set each imported image's ``text`` from the ``path,text`` CSV ``captions``; report the images without
    one (a warning) and captions of images the import does not hold (problems)."""
    by_image = {log.show(record["path"]): record for record, _ in log.rows}
    for origin, row in read_csv(captions.resolve(), log, required=("path", "text")):
        record = by_image.get(log.show(root / row["path"]))
        if record is None:
            log.problem(origin, f"caption of '{row['path']}', which is not an imported image (paths are relative "
                                "to ROOT)")
        else:
            record["text"] = row["text"]
    without = [shown for shown, record in by_image.items() if not record.get("text")]
    if without:
        logger.warning("%d of %d image(s) have no caption in %s, e.g. %s", len(without), len(by_image), captions,
                       ", ".join(without[:3]))


def _check_domains(wanted: tuple[str, ...], present: set[str], origin: Origin, log: ImportLog) -> None:
    unknown = sorted(set(wanted) - present)
    if unknown:
        log.problem(origin, f"unknown domain(s) {unknown}; available: {sorted(present)}")


def _read_lists(root: Path, folder: Path, lists: dict[Path, re.Match[str]], domains: tuple[str, ...],
                log: ImportLog) -> None:
    _check_domains(domains, {m["domain"] for m in lists.values()}, log.origin(folder), log)
    index_of: dict[int, tuple[str, Origin]] = {}
    for path, match in lists.items():
        domain, split = match["domain"], LIST_SPLITS[match["split"]]
        if domains and domain not in domains:
            continue
        for origin, relative, index in read_list(path, log, number_required=True):
            parts = PurePosixPath(relative).parts
            if len(parts) < 3:
                log.problem(origin, f"expected '<domain>/<class>/<image> <index>', got '{relative}'")
                continue
            label = parts[-2]
            if index not in index_of:
                index_of[index] = (label, origin)
            elif index_of[index][0] != label:
                known, where = index_of[index]
                log.problem(origin, f"class index {index} is '{label}' here but '{known}' at {where}")
                continue
            log.add(origin, path=root / relative, label=label, split=split, domain=domain)


def _read_tree(root: Path, options: DomainNetOptions, log: ImportLog) -> None:
    present = {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    _check_domains(options.domains, present, log.origin(root), log)
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for domain in sorted(options.domains or present):
        for image in sorted((root / domain).rglob("*")):
            relative = image.relative_to(root)
            hidden = any(part.startswith(".") for part in relative.parts)
            if image.suffix.lower() in IMAGE_EXTENSIONS and len(relative.parts) >= 3 and not hidden:
                groups[domain, image.parent.name].append(image)
    for (domain, label), images in groups.items():
        splits = assign_splits((log.show(i) for i in images), (1.0 - options.holdout, 0.0, options.holdout),
                               options.seed)
        for image in images:
            log.add(log.origin(image), path=image, label=label, split=splits[log.show(image)], domain=domain)


IMPORTER = Importer(
    name="domainnet",
    summary="DomainNet/PACS {domain}_{split}.txt lists, or a <domain>/<class>/<image> tree (Office, PACS)",
    options=DomainNetOptions,
    read=read,
    hint="List paths are relative to ROOT; pass lists=DIR for the folder of {domain}_{train,test}.txt files.",
)
