"""The exception types chronoclip raises on bad input.

Every error names *what* was wrong, *where* (file, row, key) and *what to do*. Catch
:class:`ChronoclipError` to handle any of them; the subclasses let callers react to one kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ChronoclipError(Exception):
    """Base class of every error chronoclip raises deliberately on bad input or configuration."""


class MediaError(ChronoclipError):
    """A media file (video, audio, image) cannot be read as asked.

    Raised for missing, zero-length, truncated or corrupt files, unknown codecs, and a requested
    stream that does not exist (e.g. audio from a video without an audio track).

    Attributes:
        path: the file that failed.
        cause: a short phrase saying why.
    """

    def __init__(self, path: str | Path, cause: str, hint: str = "") -> None:
        self.path = Path(path)
        self.cause = cause
        self.hint = hint
        message = f"{self.path}: {cause}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def at_row(self, manifest: str, row: int) -> MediaError:
        """The same error, saying which manifest row asked for the file."""
        return MediaError(self.path, f"{self.cause} (manifest {manifest}, row {row})", self.hint)


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a table (a manifest or an import).

    ``row`` is the 1-based data row (the header is not counted); ``None`` for table-wide problems.
    """

    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "table"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


class ManifestError(ChronoclipError, ValueError):
    """A manifest (or an import that writes one) has problems; *all* of them are listed.

    Attributes:
        source: the manifest file (or data root) the problems refer to.
        problems: every problem found, in row order.
    """

    def __init__(self, source: str | Path, problems: Sequence[Problem], hint: str = "") -> None:
        self.source = Path(source)
        self.problems = list(problems)
        shown = self.problems[:50]
        lines = [f"{len(self.problems)} problem(s) in {self.source}:"]
        lines += [f"  {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class BackboneError(ChronoclipError):
    """A backbone spec cannot be resolved or loaded (unknown preset, missing files, offline hub id)."""


class ConfigError(ChronoclipError, ValueError):
    """A configuration value is invalid; the message names the key, the value and the allowed range."""
