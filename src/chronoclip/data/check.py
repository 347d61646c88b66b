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
        rotated: videos among them stored with a rotating or mirroring display matrix (decoded upright).
        anamorphic: videos among them with non-square pixels (decoded with square pixels).
    """

    manifest: Manifest
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    rotated: int = 0
    anamorphic: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A short human-readable summary: the manifest, one line per bad file, and the decode counts last."""
        rows, splits = len(self.manifest), ", ".join(
            f"{s}={len(self.manifest.split(s))}" for s in self.manifest.splits) or "no split column"
        lines = [f"{self.manifest.name}: {rows} rows ({splits}); columns: {', '.join(self.manifest.columns)}",
                 *(f"  {p}" for p in self.problems)]
        if self.checked:
            lines.append(f"decoded {self.checked} file(s): {self.checked - len(self.problems)} ok, "
                         f"{len(self.problems)} bad; {self.rotated} rotated or mirrored, {self.anamorphic} "
                         "anamorphic (both decoded as displayed)")
        return "\n".join(lines)


def _decode_test(path: Path, audio_only: bool) -> tuple[bool, bool]:
    """Read a little of ``path`` with the reader its suffix calls for; raise MediaError if it fails.

    Returns:
        Whether it is a video stored rotated (or mirrored), and whether one with non-square pixels.
    """
    from chronoclip.io.audio import load_audio
    from chronoclip.io.image import load_image
    from chronoclip.io.video import probe_video, read_video

    suffix = path.suffix.lower()
    if audio_only or suffix in AUDIO_SUFFIXES:
        load_audio(path, duration=1.0)
    elif suffix in VIDEO_SUFFIXES:
        read_video(path, num_frames=2)
        info = probe_video(path)  # cached by read_video
        return bool(info.rotation or info.flipped), info.anamorphic
    elif suffix in IMAGE_SUFFIXES:
        load_image(path)
    else:
        raise MediaError(path, f"unknown media suffix '{suffix}'",
                         hint="use a video, audio or image file with its usual extension")
    return False, False


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

    def run(job: tuple[int, str, Path, bool]) -> Problem | tuple[bool, bool]:
        row, column, file, audio_only = job
        try:
            return _decode_test(file, audio_only)
        except MediaError as exc:
            return Problem(str(exc), row, column)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="decode-test", unit="file",
                            disable=not progress))
    report.checked = len(jobs)
    report.problems = [p for p in results if isinstance(p, Problem)]
    decoded = [r for r in results if not isinstance(r, Problem)]
    report.rotated = sum(rotated for rotated, _ in decoded)
    report.anamorphic = sum(anamorphic for _, anamorphic in decoded)
    if report.problems:
        log.warning("%d of %d files failed to decode", len(report.problems), len(jobs))
    return report
