"""Importers: official data-set layouts, read verbatim, to one manifest (DESIGN §3).

Each format is one module with an ``IMPORTER``; :data:`IMPORTERS` lists them explicitly (importing
this package registers nothing by side effect). :func:`import_dataset` runs one, checks every
referenced file, writes ``OUT/manifest.csv`` with paths relative to ``OUT`` (so the manifest folder
may live outside the data root) and validates it with :func:`~chronoclip.data.manifest.load_manifest`.

Example:
    >>> from chronoclip.data.formats import import_dataset                          # doctest: +SKIP
    >>> import_dataset("ucf101", "/datasets/UCF101", "data/ucf101", split=2)         # doctest: +SKIP
    PosixPath('/home/me/project/data/ucf101/manifest.csv')
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from chronoclip.data.formats import domainnet, esc50, hmdb51, kinetics, timelapse, ucf101
from chronoclip.data.formats.common import Importer, ImportLog, SourceProblem, convert
from chronoclip.data.manifest import load_manifest, write_manifest
from chronoclip.errors import ConfigError, ManifestError, Problem

__all__ = ["IMPORTERS", "Importer", "SourceProblem", "get_importer", "import_dataset", "list_formats"]

logger = logging.getLogger(__name__)

#: Every supported format by name.
IMPORTERS: dict[str, Importer] = {
    module.IMPORTER.name: module.IMPORTER
    for module in (ucf101, hmdb51, kinetics, esc50, domainnet, timelapse)
}

MANIFEST_NAME = "manifest.csv"
SKIPPED_NAME = "skipped.txt"


def list_formats() -> list[str]:
    """The names of the supported formats, sorted."""
    return sorted(IMPORTERS)


def get_importer(fmt: str) -> Importer:
    """The importer for ``fmt``.

    Raises:
        ConfigError: an unknown format; the message lists the known ones.
    """
    try:
        return IMPORTERS[fmt.lower()]
    except KeyError:
        known = ", ".join(list_formats())
        raise ConfigError(f"unknown data set format '{fmt}'; choose one of: {known}") from None


def import_dataset(fmt: str, root: str | Path, out: str | Path, *, allow_missing: bool | str = False,
                   **options: Any) -> Path:
    """Read the data set at ``root`` in format ``fmt`` and write ``out/manifest.csv``.

    Args:
        fmt: one of :func:`list_formats`.
        root: the data set's folder, as distributed.
        out: the folder for ``manifest.csv`` (created if needed); it need not be inside ``root``.
        allow_missing: skip samples whose media file is missing or empty (and, for ``timelapse``,
            images without a readable time) instead of failing; they are logged and listed in
            ``out/skipped.txt``.
        **options: the format's options (see ``IMPORTERS[fmt].option_help()``); strings, as given
            on the command line, are converted to the option's type.

    Returns:
        The path of the written manifest.

    Raises:
        ConfigError: an unknown format or option, or an invalid option value.
        ManifestError: the data set has problems; *all* of them are listed, each with the input
            file and line it was found at.
    """
    importer = get_importer(fmt)
    parsed = importer.parse_options(options)
    skip_missing = convert(allow_missing, bool, "allow_missing")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ManifestError(root, [Problem("data root folder not found")], hint=importer.hint)
    log = ImportLog(root)
    importer.read(root, parsed, log)
    records, skipped = log.finish(skip_missing, hint=importer.hint)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    skipped_file = out / SKIPPED_NAME
    if skipped:
        skipped_file.write_text("".join(f"{problem}\n" for problem in skipped), encoding="utf-8")
        logger.warning("%s: %d sample(s) skipped, listed in %s", importer.name, len(skipped), skipped_file)
    else:
        skipped_file.unlink(missing_ok=True)
    manifest = write_manifest(records, out / MANIFEST_NAME)
    load_manifest(manifest)
    logger.info("%s: wrote %d rows to %s", importer.name, len(records), manifest)
    return manifest
