"""chronoclip.io.video: index sampling, frame-accurate sparse decoding, errors, resource hygiene.

Test videos carry their frame number in binary: bit ``b`` of frame ``i`` is a 16x16 black or white block,
so every decoded frame can be identified exactly (H.264 at crf 18 keeps the blocks far from the 128
threshold).
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from chronoclip.errors import MediaError
from chronoclip.io import video as video_module
from chronoclip.io.video import (
    STRATEGIES,
    clear_probe_cache,
    probe_video,
    read_frames,
    read_video,
    sample_frame_indices,
)
from chronoclip.io.writers import write_video, write_wav

BITS, BLOCK = 7, 16
NUM_FRAMES = 120  # < 2**BITS


def coded_frames(count: int = NUM_FRAMES) -> np.ndarray:
    """``uint8 [count, 16, 112, 3]``: frame i shows i in binary, least significant bit on the left."""
    frames = np.zeros((count, BLOCK, BLOCK * BITS, 3), dtype=np.uint8)
    for i in range(count):
        for bit in range(BITS):
            if (i >> bit) & 1:
                frames[i, :, bit * BLOCK:(bit + 1) * BLOCK] = 255
    return frames


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Read the binary frame numbers back from decoded ``[T, H, W, 3]`` frames."""
    inner = slice(4, BLOCK - 4)
    return [sum(int(frame[inner, bit * BLOCK:(bit + 1) * BLOCK][:, inner].mean() > 128) << bit
                for bit in range(BITS)) for frame in frames]


def write_with_pyav(path: Path, frames: np.ndarray, fps: int, fmt: str, codec: str,
                    options: dict[str, str] | None = None, container_options: dict[str, str] | None = None,
                    ) -> Path:
    """Write frames with an arbitrary container/codec (formats the project's writer does not make)."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = 12
        stream.codec_context.options = options or {}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Coded test videos: GOP 25 and GOP 250 at 25 fps, GOP 25 at 30000/1001 fps."""
    folder = tmp_path_factory.mktemp("videos")
    frames = coded_frames()
    specs = {"gop25": (25, 25), "gop250": (25, 250), "ntsc": (Fraction(30000, 1001), 25)}
    paths = {}
    for name, (fps, gop) in specs.items():
        paths[name] = folder / f"{name}.mp4"
        write_video(paths[name], frames, fps, gop=gop)
    return paths


# --- index sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("num_frames", "n", "first", "last"),
                         [(100, 8, 0, None), (250, 16, 0, None), (100, 4, 20, 40), (9, 8, 0, None)])
def test_indices_count_range_order(strategy: str, num_frames: int, n: int, first: int,
                                   last: int | None) -> None:
    rng = np.random.default_rng(0)
    indices = sample_frame_indices(num_frames, n, strategy, rng=rng, first=first, last=last)
    top = num_frames if last is None else last
    assert indices.shape == (n,) and indices.dtype == np.int64
    assert indices.min() >= first and indices.max() < top
    assert np.all(np.diff(indices) >= 0)


def test_uniform_spans_the_range_with_both_ends() -> None:
    assert sample_frame_indices(100, 5, "uniform").tolist() == [0, 25, 50, 74, 99]
    assert sample_frame_indices(100, 3, "uniform", first=10, last=21).tolist() == [10, 15, 20]
    assert sample_frame_indices(10, 1, "uniform").tolist() == [5]  # one frame: the middle


def test_segment_takes_segment_centres() -> None:
    assert sample_frame_indices(100, 4, "segment").tolist() == [12, 37, 62, 87]
    assert sample_frame_indices(100, 4, "segment", first=20, last=40).tolist() == [22, 27, 32, 37]


def test_random_draws_one_index_per_segment_and_is_seeded() -> None:
    draws = np.stack([sample_frame_indices(80, 8, "random", rng=np.random.default_rng(s)) for s in range(50)])
    low = np.arange(8) * 10
    assert np.all((draws >= low) & (draws < low + 10))
    assert len({tuple(d) for d in draws.tolist()}) > 40  # really random
    again = sample_frame_indices(80, 8, "random", rng=np.random.default_rng(3))
    assert again.tolist() == draws[3].tolist()


def test_dense_is_consecutive_with_stride_centred_or_random() -> None:
    centred = sample_frame_indices(100, 8, "dense", stride=2)
    assert centred.tolist() == list(range(42, 57, 2))
    for seed in range(20):
        dense = sample_frame_indices(100, 8, "dense", stride=3, rng=np.random.default_rng(seed))
        assert np.all(np.diff(dense) == 3) and dense[0] >= 0 and dense[-1] < 100
    a = sample_frame_indices(100, 8, "dense", rng=np.random.default_rng(7))
    b = sample_frame_indices(100, 8, "dense", rng=np.random.default_rng(7))
    assert a.tolist() == b.tolist()


def test_short_videos_repeat_indices() -> None:
    assert sample_frame_indices(3, 8, "uniform").tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert sample_frame_indices(3, 8, "segment").tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sample_frame_indices(3, 5, "dense").tolist() == [0, 1, 2, 2, 2]
    rand = sample_frame_indices(3, 8, "random", rng=np.random.default_rng(0))
    assert set(rand.tolist()) <= {0, 1, 2} and np.all(np.diff(rand) >= 0)
    assert sample_frame_indices(1, 4, "segment").tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "middle"}, "strategy must be one of"),
    ({"num_frames": 0}, "num_frames must be >= 1"),
    ({"n": 0}, "n must be >= 1"),
    ({"strategy": "dense", "stride": 0}, "stride must be >= 1"),
    ({"stride": 2}, "stride applies only to strategy 'dense'"),
    ({"first": 5, "last": 5}, "0 <= first < last <= num_frames"),
    ({"last": 11}, "0 <= first < last <= num_frames"),
    ({"strategy": "random"}, "needs rng"),
])
def test_sampling_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"num_frames": 10, "n": 4, "strategy": "uniform", **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_frame_indices(**args)  # type: ignore[arg-type]


# --- probing and decoding -------------------------------------------------------------------------


def test_probe_reports_stream_facts(videos: dict[str, Path]) -> None:
    info = probe_video(videos["gop25"])
    assert (info.num_frames, info.fps, info.width, info.height) == (NUM_FRAMES, 25.0, BLOCK * BITS, BLOCK)
    assert info.duration == pytest.approx(NUM_FRAMES / 25)
    assert (info.codec, info.has_audio, info.start_time) == ("h264", False, 0.0)
    ntsc = probe_video(videos["ntsc"])
    assert ntsc.fps == pytest.approx(30000 / 1001) and ntsc.num_frames == NUM_FRAMES
    assert ntsc.duration == pytest.approx(NUM_FRAMES * 1001 / 30000)


@pytest.mark.parametrize("name", ["gop25", "gop250", "ntsc"])
def test_frames_are_the_requested_ones(videos: dict[str, Path], name: str) -> None:
    info = probe_video(videos[name])
    rng = np.random.default_rng(1)
    for _ in range(6):
        indices = rng.integers(0, NUM_FRAMES, 9)  # any order, repeats allowed
        clip = read_frames(videos[name], indices)
        assert clip.frames.shape == (9, BLOCK, BLOCK * BITS, 3) and clip.frames.dtype == np.uint8
        assert frame_numbers(clip.frames) == indices.tolist()
        assert clip.timestamps.dtype == np.float64
        # within one frame period of the request (in fact exact for these constant-rate files)
        assert np.all(np.abs(clip.timestamps - indices / info.fps) < 1 / info.fps)
        assert clip.indices.tolist() == indices.tolist()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_read_video_returns_sampled_frames(videos: dict[str, Path], strategy: str) -> None:
    clip = read_video(videos["gop25"], 8, strategy, seed=0)
    assert frame_numbers(clip.frames) == clip.indices.tolist()
    assert clip.indices.tolist() == sample_frame_indices(
        NUM_FRAMES, 8, strategy, rng=np.random.default_rng(0) if strategy in ("random", "dense") else None
    ).tolist()


def test_dense_consecutive_frames_are_exact(videos: dict[str, Path]) -> None:
    clip = read_video(videos["gop250"], 16, "dense", stride=1, seed=5)
    assert frame_numbers(clip.frames) == clip.indices.tolist()
    assert np.all(np.diff(clip.indices) == 1)


def test_start_end_window_in_seconds(videos: dict[str, Path]) -> None:
    clip = read_video(videos["gop25"], 5, "uniform", start=1.0, end=2.0)
    assert clip.indices.tolist() == [25, 31, 37, 43, 49]
    assert frame_numbers(clip.frames) == clip.indices.tolist()
    assert np.all((clip.timestamps >= 1.0) & (clip.timestamps < 2.0))
    ntsc = read_video(videos["ntsc"], 4, "segment", start=2.0)
    assert ntsc.indices.min() >= 60 and frame_numbers(ntsc.frames) == ntsc.indices.tolist()


@pytest.mark.parametrize(("start", "end"), [(5.0, None), (-0.5, 1.0), (1.0, 1.0), (0.0, 6.0)])
def test_window_outside_the_video_is_a_media_error(videos: dict[str, Path], start: float,
                                                   end: float | None) -> None:
    with pytest.raises(MediaError, match="outside the video") as err:
        read_video(videos["gop25"], 4, start=start, end=end)
    assert str(videos["gop25"]) in str(err.value)


def test_index_outside_the_video_is_a_media_error(videos: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="frame index 120 is outside"):
        read_frames(videos["gop25"], [3, NUM_FRAMES])
    with pytest.raises(ValueError, match="non-empty"):
        read_frames(videos["gop25"], [])
    with pytest.raises(ValueError, match="integers"):
        read_frames(videos["gop25"], np.array([1.5]))


def test_sparse_reads_decode_only_the_needed_gop(videos: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading frame 110 of a GOP-25 file decodes from keyframe 100 onwards, not from frame 0."""
    decoded = []
    original = video_module._Decoder._next_frame

    def counting(self: video_module._Decoder) -> video_module._Frame | None:
        frame = original(self)
        decoded.append(None if frame is None else frame.pts)
        return frame

    monkeypatch.setattr(video_module._Decoder, "_next_frame", counting)
    clip = read_frames(videos["gop25"], [110])
    assert frame_numbers(clip.frames) == [110]
    assert decoded == [100 * 512 + 512 * k for k in range(11)]  # keyframe 100 to 110 (pts 512 / frame)
    decoded.clear()
    clip = read_video(videos["gop25"], 4, "segment")
    assert clip.indices.tolist() == [15, 45, 75, 105]
    # 0..15, 25..45, 75, 100..105 from their keyframes: 44 frames instead of 106 decoding through
    assert len(decoded) == 16 + 21 + 1 + 6


def test_matroska_without_frame_count_is_counted(tmp_path: Path) -> None:
    """mkv has no frame count in its header: the reader counts packets and still seeks exactly."""
    path = write_with_pyav(tmp_path / "clip.mkv", coded_frames(), 25, "matroska", "libx264")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    assert probe_video(path).num_frames == NUM_FRAMES
    indices = np.array([0, 13, 57, 58, 101, 119])
    assert frame_numbers(read_frames(path, indices).frames) == indices.tolist()


def test_avi_with_b_frames_maps_indices_to_the_right_frames(tmp_path: Path) -> None:
    """MPEG-4 part 2 in AVI with B-frames: the first frame's pts is 1, not the stream's start_time 0."""
    path = write_with_pyav(tmp_path / "clip.avi", coded_frames(), 25, "avi", "mpeg4", options={"bf": "2"})
    info = probe_video(path)
    assert info.num_frames == NUM_FRAMES
    indices = np.array([0, 11, 12, 13, 50, 119, 2])
    assert frame_numbers(read_frames(path, indices).frames) == indices.tolist()


def test_package_exports_resolve() -> None:
    import chronoclip.io as io_package

    assert all(getattr(io_package, name) is not None for name in io_package.__all__)
    assert set(io_package.__all__) == {n for names in io_package._EXPORTS.values() for n in names}


def test_probe_cache_follows_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, coded_frames(30), 25)
    assert probe_video(path).num_frames == 30
    write_video(path, coded_frames(50), 25)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert probe_video(path).num_frames == 50
    clear_probe_cache()
    assert probe_video(path).num_frames == 50


# --- errors ---------------------------------------------------------------------------------------


def _broken_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Files that must fail, with the phrase the MediaError should contain."""
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov (at the end) is lost
    audio_only = folder / "sound.wav"
    write_wav(audio_only, np.zeros(1600, dtype=np.float32), 16000)
    unknown = folder / "unknown_codec.avi"
    write_with_pyav(unknown, coded_frames(10), 25, "avi", "mpeg4")
    unknown.write_bytes(unknown.read_bytes().replace(b"FMP4", b"QQQZ"))  # a FourCC FFmpeg does not know
    return {
        "missing": (folder / "missing.mp4", "file not found"),
        "empty": (empty, "empty"),
        "garbage": (garbage, "cannot open"),
        "truncated": (truncated, "cannot open"),
        "no video": (audio_only, "no video stream"),
        "unknown codec": (unknown, "unknown video codec"),
    }


def test_bad_files_raise_media_error_naming_the_file(tmp_path: Path, videos: dict[str, Path]) -> None:
    for case, (path, phrase) in _broken_files(tmp_path, videos["gop25"]).items():
        for reader in (probe_video, lambda p: read_video(p, 2)):
            with pytest.raises(MediaError, match=phrase) as err:
                reader(path)
            assert str(path) in str(err.value), case


def test_data_ending_before_the_header_says_is_a_media_error(tmp_path: Path) -> None:
    """An mp4 with its index first (faststart) but truncated data: early frames read, late ones fail."""
    path = write_with_pyav(tmp_path / "fast.mp4", coded_frames(), 25, "mp4", "libx264",
                           container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert probe_video(cut).num_frames == NUM_FRAMES
    assert frame_numbers(read_frames(cut, [5]).frames) == [5]
    with pytest.raises(MediaError, match=r"truncated|decoding failed") as err:
        read_frames(cut, [NUM_FRAMES - 1])
    assert str(cut) in str(err.value)


def test_containers_are_closed(tmp_path: Path, videos: dict[str, Path]) -> None:
    """200 reads, good and bad, leave no file descriptor open."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.exists():
        pytest.skip("needs /proc/self/fd (Linux)")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    read_video(videos["gop25"], 2)  # warm-up: lazy imports, loggers
    before = len(os.listdir(fd_dir))
    for i in range(200):
        if i % 4 == 3:
            with pytest.raises(MediaError):
                read_video(garbage, 2)
        elif i % 4 == 2:
            with pytest.raises(MediaError):
                read_video(videos["gop25"], 2, start=99.0)
        else:
            read_frames(videos["gop250" if i % 2 else "gop25"], [i % NUM_FRAMES])
    assert len(os.listdir(fd_dir)) == before


def test_variable_frame_rate_gap_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Index i means time i / average fps; a request inside a gap gets the nearest frame and a warning."""
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = BLOCK * BITS, BLOCK, "yuv420p"
        for i, pixels in enumerate(coded_frames(40)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i if i < 20 else i + 40  # a 1.6 s gap after frame 19
            frame.time_base = Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    info = probe_video(path)
    assert (info.num_frames, info.fps) == (40, 12.5)
    with caplog.at_level(logging.WARNING, logger="chronoclip.io.video"):
        clip = read_frames(path, [5, 15, 30])
    assert frame_numbers(clip.frames) == [10, 19, 20]  # at 0.4 s, nearest to 1.2 s, at 2.4 s
    assert clip.timestamps.tolist() == pytest.approx([0.4, 0.76, 2.4])
    assert "1 of 3 frames decoded more than one frame period" in caplog.text
