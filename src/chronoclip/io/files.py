"""What every media reader does before decoding: check the file, open it with PyAV."""

from __future__ import annotations

import os
from pathlib import Path

import av

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


def open_container(path: Path, kind: str) -> av.container.InputContainer:
    """Open ``path`` with PyAV for reading; a file FFmpeg cannot open becomes a MediaError.

    ``kind`` names what the caller expected, with its article ("a video", "an audio/video"), in the hint.
    """
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"cannot open as a media file ({exc})",
                         hint=f"the file may be corrupt, truncated or not {kind} file") from exc
