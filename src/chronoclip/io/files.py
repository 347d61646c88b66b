"""The one up-front check every media reader makes before decoding a file."""

from __future__ import annotations

import os
from pathlib import Path

from chronoclip.errors import MediaError


def stat_media(path: Path) -> os.stat_result:
    """Stat ``path``; MediaError if it is missing, inaccessible, not a regular file or empty."""
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise MediaError(path, "file not found") from exc
    except OSError as exc:
        raise MediaError(path, f"cannot access file ({exc.strerror})") from exc
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if stat.st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    return stat
