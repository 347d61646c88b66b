"""Writers for real media files: mp4 (H.264 or MPEG-4 video, AAC or PCM audio), wav, png.

Used by the synthetic worlds and by tests that need real files. With ``codec="mpeg4"`` outputs are
byte-for-byte deterministic for the same input (bit-exact muxing, single-threaded encoding); every
file is written atomically: a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile
from PIL import Image

logger = logging.getLogger(__name__)
#: Share of samples past ±1 above which writing audio warns (a stray peak is normal, a clipped mix is not).
CLIP_WARN_FRACTION = 0.001


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (renames, new files) to disk, so a completed rename survives a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, content: Any) -> None:
    """Write ``content`` as indented, key-sorted JSON, atomically (a crash leaves the old file or none)."""
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


#: Video encoders and their settings. FFmpeg's native MPEG-4 Part 2 encoder is byte-reproducible;
#: libx264's output varied between identical runs in one process here even single-threaded
#: (measured), so data that must be a function of a seed (the synthetic worlds) uses ``mpeg4``.
VIDEO_CODECS = ("libx264", "mpeg4")


def _video_options(codec: str, gop: int, quality: int) -> dict[str, str]:
    if codec == "libx264":
        return {"crf": str(quality), "preset": "veryfast", "threads": "1", "g": str(gop), "keyint_min": str(gop),
                "sc_threshold": "0", "flags": "+bitexact"}
    if codec == "mpeg4":
        # A fixed quantiser needs the +qscale flag and qmin = qmax; a "qscale" option alone is ignored
        # and the encoder falls back to ~4 kbit/s rate control, smearing later frames.
        quantiser = str(max(2, min(31, quality // 6)))
        return {"flags": "+qscale+bitexact", "qmin": quantiser, "qmax": quantiser, "g": str(gop)}
    raise ValueError(f"codec must be one of {VIDEO_CODECS}, got '{codec}'")


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    audio_codec: str = "aac",
    gop: int = 25,
    quality: int = 18,
    codec: str = "libx264",
    display_matrix: Sequence[int] | None = None,
    sample_aspect: Fraction | None = None,
) -> None:
    """Write an mp4 (H.264 or MPEG-4 Part 2), optionally with a mono audio track.

    Args:
        path: output file (``.mp4``).
        frames: ``uint8 [T, H, W, 3]`` RGB frames; H and W must be even (yuv420p).
        fps: frame rate; may be fractional.
        audio: optional float waveform ``[S]`` in [-1, 1] at ``sample_rate``.
        audio_codec: ``"aac"`` or ``"pcm_s16le"`` (lossless and sample-exact).
        gop: keyframe interval in frames (the decode benchmark varies it).
        quality: x264 CRF (lower is better); for ``mpeg4`` the quantiser is ``quality // 6``.
        codec: ``libx264`` or ``mpeg4`` (byte-reproducible; see :data:`VIDEO_CODECS`).
        display_matrix: FFmpeg's 9-integer display matrix stored with the stream (how a player should
            rotate / mirror the frames, as phones write it; :mod:`chronoclip.io.orientation`); needs PyAV >= 18.
        sample_aspect: the stored pixels' width : height (anamorphic video when not 1).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {height}x{width}")
    rate = Fraction(fps).limit_denominator(1001)
    options = _video_options(codec, gop, quality)
    samples = None if audio is None else _unit_range(audio, path).reshape(-1)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"})
        try:
            vstream = container.add_stream(codec, rate=rate, options=options)
            assert isinstance(vstream, av.video.stream.VideoStream)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.codec_context.gop_size = gop
            vstream.thread_count = 1
            if sample_aspect is not None:
                vstream.codec_context.sample_aspect_ratio = Fraction(sample_aspect)
            if display_matrix is not None:
                if not hasattr(vstream, "set_display_matrix"):
                    raise ValueError(f"writing a display matrix needs PyAV >= 18 (this is {av.__version__})")
                vstream.set_display_matrix(list(display_matrix))
            astream: av.audio.stream.AudioStream | None = None
            if samples is not None:
                added = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
                assert isinstance(added, av.audio.stream.AudioStream)
                astream = added
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
                picture.pts, picture.time_base = index, Fraction(1) / rate
                for packet in vstream.encode(picture):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
            if astream is not None and samples is not None:
                _encode_audio(container, astream, samples, sample_rate)
        finally:
            container.close()


def _unit_range(audio: np.ndarray, path: str | Path) -> np.ndarray:
    """``audio`` as float32 clipped to [-1, 1] for 16-bit PCM, warning (with ``path``) when more than
    :data:`CLIP_WARN_FRACTION` of its samples were outside: such a file is distorted, not just peaky."""
    samples = np.asarray(audio, dtype=np.float32)
    clipped = float(np.mean(np.abs(samples) > 1.0)) if samples.size else 0.0
    if clipped > CLIP_WARN_FRACTION:
        logger.warning("%s: %.2f %% of the audio samples are outside [-1, 1] and were clipped; scale the "
                       "waveform down before writing", path, 100 * clipped)
    return np.clip(samples, -1.0, 1.0)


def _encode_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  samples: np.ndarray, sample_rate: int) -> None:
    """Encode a mono float waveform ``[S]`` in [-1, 1] into ``stream`` in codec-sized chunks."""
    pcm = (samples * 32767.0).astype(np.int16)
    chunk = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, len(pcm), chunk):
        piece = pcm[start:start + chunk]
        frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        pts += len(piece)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write a 16-bit PCM wav; ``audio`` is float ``[S]`` (mono) or ``[S, C]`` in [-1, 1]."""
    data = _unit_range(audio, path)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a ``uint8 [H, W, 3]`` RGB image as PNG (no timestamps or other varying metadata)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H,W,3], got {array.dtype} {array.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="RGB").save(tmp, format="PNG", optimize=False)
