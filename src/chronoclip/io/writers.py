"""Writers for real media files: mp4 (H.264 + AAC or PCM audio), wav, png.

Used by the synthetic worlds and by tests that need real files. Outputs are byte-for-byte
deterministic for the same input (bit-exact muxing, single-threaded encoding) and written
atomically: a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
from PIL import Image


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


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    audio_codec: str = "aac",
    gop: int = 25,
    crf: int = 18,
) -> None:
    """Write an H.264 mp4, optionally with a mono audio track.

    Args:
        path: output file (``.mp4``).
        frames: ``uint8 [T, H, W, 3]`` RGB frames; H and W must be even (yuv420p).
        fps: frame rate; may be fractional.
        audio: optional float waveform ``[S]`` in [-1, 1] at ``sample_rate``.
        audio_codec: ``"aac"`` or ``"pcm_s16le"`` (the latter is lossless; use ``.mov``/``.mkv``
            if a player rejects PCM in mp4).
        gop: keyframe interval in frames (the decode benchmark varies it).
        crf: x264 quality (lower is better).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {height}x{width}")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"})
        try:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.codec_context.gop_size = gop
            vstream.codec_context.options = {
                "crf": str(crf), "preset": "veryfast", "threads": "1", "g": str(gop),
                "keyint_min": str(gop), "sc_threshold": "0", "flags": "+bitexact",
            }
            astream: av.audio.stream.AudioStream | None = None
            if audio is not None:
                # No codec options here: setting them on the AAC encoder made its output vary run to run.
                added = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
                assert isinstance(added, av.audio.stream.AudioStream)
                astream = added
            for frame in frames:
                for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
            if astream is not None and audio is not None:
                _encode_audio(container, astream, audio, sample_rate)
        finally:
            container.close()


def _encode_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  audio: np.ndarray, sample_rate: int) -> None:
    """Encode a mono float waveform into ``stream`` in codec-sized chunks."""
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
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
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a ``uint8 [H, W, 3]`` RGB image as PNG (no timestamps or other varying metadata)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H,W,3], got {array.dtype} {array.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="RGB").save(tmp, format="PNG", optimize=False)
