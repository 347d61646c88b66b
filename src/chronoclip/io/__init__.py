"""Media readers and writers: video (PyAV), audio (soundfile / PyAV), images (Pillow).

Nothing in this package knows about data sets, manifests or models.

The names below are imported lazily on first use, so ``import chronoclip.io.writers`` (used by the data
and engine packages) does not pay for importing torch and transformers, which only ``log_mel`` needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chronoclip._lazy import lazy_exports

if TYPE_CHECKING:
    from chronoclip.io.audio import MelConfig, load_audio, log_mel, mel_filters, resample
    from chronoclip.io.image import load_image
    from chronoclip.io.video import (
        STRATEGIES,
        VideoClip,
        VideoInfo,
        clear_probe_cache,
        probe_video,
        read_frames,
        read_video,
        sample_frame_indices,
    )
    from chronoclip.io.writers import write_png, write_video, write_wav

_EXPORTS = {
    "chronoclip.io.audio": ("MelConfig", "load_audio", "log_mel", "mel_filters", "resample"),
    "chronoclip.io.image": ("load_image",),
    "chronoclip.io.video": ("STRATEGIES", "VideoClip", "VideoInfo", "clear_probe_cache", "probe_video",
                            "read_frames", "read_video", "sample_frame_indices"),
    "chronoclip.io.writers": ("write_png", "write_video", "write_wav"),
}

__all__ = [
    "STRATEGIES",
    "MelConfig",
    "VideoClip",
    "VideoInfo",
    "clear_probe_cache",
    "load_audio",
    "load_image",
    "log_mel",
    "mel_filters",
    "probe_video",
    "read_frames",
    "read_video",
    "resample",
    "sample_frame_indices",
    "write_png",
    "write_video",
    "write_wav",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
