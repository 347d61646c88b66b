"""`chronoclip data check`: validate a manifest and optionally decode-test every media file.

Validation is the manifest's own (every problem with its row). Decode-testing opens each file with
the reader its suffix calls for (video, audio or image) and reads a little of it, so broken media
are found before a long training run rather than in the middle of one.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.errors import MediaError, Problem

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass
class CheckReport:
    """What `check_manifest` found.

    Attributes:
        manifest: the validated manifest.
        checked: number of files decode-tested (0 when decoding was not asked for).
        problems: decode failures, each with the manifest row and the reader's message.
    """

    manifest: Manifest
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A short human-readable summary (one line, then one line per bad file)."""
        rows, splits = len(self.manifest), ", ".join(
            f"{s}={len(self.manifest.split(s))}" for s in self.manifest.splits) or "no split column"
        head = f"{self.manifest.name}: {rows} rows ({splits}); columns: {', '.join(self.manifest.columns)}"
        if self.checked:
            head += f"\ndecoded {self.checked} file(s): {self.checked - len(self.problems)} ok, " \
                    f"{len(self.problems)} bad"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def _decode_test(path: Path, audio_only: bool) -> None:
    """Read a little of ``path`` with the reader its suffix calls for; raise MediaError if it fails."""
    from chronoclip.io.audio import load_audio
    from chronoclip.io.image import load_image
    from chronoclip.io.video import read_video

    suffix = path.suffix.lower()
    if audio_only or suffix in AUDIO_SUFFIXES:
        load_audio(path, duration=1.0)
    elif suffix in VIDEO_SUFFIXES:
        read_video(path, num_frames=2)
    elif suffix in IMAGE_SUFFIXES:
        load_image(path)
    else:
        raise MediaError(path, f"unknown media suffix '{suffix}'",
                         hint="use a video, audio or image file with its usual extension")


def check_manifest(path: str | Path, decode: bool = False, workers: int = 2, progress: bool = True,
                   ) -> CheckReport:
    """Validate a manifest and, with ``decode``, decode-test every ``path`` and ``audio`` file.

    Raises:
        ManifestError: the manifest itself is invalid (every problem listed with its row).
    """
    manifest = load_manifest(path)
    report = CheckReport(manifest)
    if not decode:
        return report
    jobs: list[tuple[int, str, Path, bool]] = []
    for record, row in zip(manifest.records, manifest.rows, strict=True):
        jobs.append((row, "path", record["path"], False))
        if record.get("audio") is not None:
            jobs.append((row, "audio", record["audio"], True))

    def run(job: tuple[int, str, Path, bool]) -> Problem | None:
        row, column, file, audio_only = job
        try:
            _decode_test(file, audio_only)
        except MediaError as exc:
            return Problem(str(exc), row, column)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="decode-test", unit="file",
                            disable=not progress))
    report.checked = len(jobs)
    report.problems = [p for p in results if p is not None]
    if report.problems:
        log.warning("%d of %d files failed to decode", len(report.problems), len(jobs))
    return report
