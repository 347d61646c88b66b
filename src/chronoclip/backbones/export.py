"""Publish a trained backbone as a Hugging Face CLIP folder with chronoclip's metadata and file hashes.

The folder (``config.json``, ``model.safetensors``, tokenizer and preprocessor files) loads with
``load_backbone(folder)`` and with ``transformers.CLIPModel.from_pretrained(folder)``. Beside them,
``chronoclip.json`` records a description, the default zero-shot template set, how the weights were made
(``provenance``) and the ``sha256`` of every other file, which :func:`verify_folder` checks — so a shipped
preset that was edited or truncated is detected.

Example:
    >>> import tempfile
    >>> from chronoclip.backbones import load_backbone
    >>> folder = export_backbone(load_backbone("tiny"), tempfile.mkdtemp(), "a test export")
    >>> verify_folder(folder)
    []
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from chronoclip.backbones.presets import META_FILE, read_meta


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_backbone(backbone: Any, out: str | Path, description: str, templates: str | None = None,
                    provenance: dict[str, Any] | None = None) -> Path:
    """Write ``backbone`` to ``out`` (replaced as a whole, never left half-written) with its metadata.

    Args:
        backbone: a :class:`~chronoclip.backbones.clip.Backbone`.
        out: the folder to create or replace.
        description: one line for ``chronoclip backbone list``.
        templates: default zero-shot template set of these weights (e.g. ``world``).
        provenance: how the weights were made (command, config, data, metrics).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        backbone.save(staging)
        files = {p.name: sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
        meta = {"description": description, "templates": templates, "provenance": provenance or {},
                "files": files}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def verify_folder(folder: str | Path) -> list[str]:
    """Differences between a folder's files and the hashes its ``chronoclip.json`` records (empty = intact).

    Files the metadata lists that are missing or differ, and files present but not listed, are named.
    """
    folder = Path(folder)
    recorded: dict[str, str] = read_meta(folder).get("files", {})
    if not recorded:
        return [f"{folder / META_FILE} lists no file hashes"]
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != META_FILE}
    problems = [f"{name}: missing" for name in sorted(set(recorded) - present)]
    problems += [f"{name}: not in {META_FILE}" for name in sorted(present - set(recorded))]
    problems += [f"{name}: sha256 differs from {META_FILE}" for name in sorted(present & set(recorded))
                 if sha256(folder / name) != recorded[name]]
    return problems
