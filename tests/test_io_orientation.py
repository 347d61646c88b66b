"""Videos come out as displayed: display-matrix rotations and mirrors, anamorphic pixels, autorotate off."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from chronoclip.io.orientation import Orientation
from chronoclip.io.video import clear_probe_cache, probe_video, read_frames, read_video
from chronoclip.io.writers import write_video

ONE = 1 << 16
W_ONE = 1 << 30
#: Display matrices (FFmpeg layout, 16.16) and the stored frame that each displays as a given upright one.
MATRICES = {
    "rotate 0": ([ONE, 0, 0, 0, ONE, 0, 0, 0, W_ONE], lambda f: f),
    "rotate 90": ([0, -ONE, 0, ONE, 0, 0, 0, 0, W_ONE], lambda f: np.rot90(f, -1)),  # shown turned 90° left
    "rotate 180": ([-ONE, 0, 0, 0, -ONE, 0, 0, 0, W_ONE], lambda f: np.rot90(f, 2)),
    "rotate 270": ([0, ONE, 0, -ONE, 0, 0, 0, 0, W_ONE], lambda f: np.rot90(f, 1)),
    "mirror": ([-ONE, 0, 0, 0, ONE, 0, 0, 0, W_ONE], lambda f: f[:, ::-1]),
    "mirror + rotate 90": ([0, ONE, 0, ONE, 0, 0, 0, 0, W_ONE], lambda f: f.transpose(1, 0, 2)),
}


def upright(frames: int = 3, height: int = 48, width: int = 64) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` frames with no symmetry: a bright block top-left, a ramp, a coloured corner."""
    rng = np.random.default_rng(0)
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, None, :]
    video[:, : height // 3, : width // 4] = 255
    video[:, -height // 4:, -width // 5:, 2] = 230
    return np.clip(video.astype(int) + rng.integers(0, 8, video.shape), 0, 255).astype(np.uint8)


def stored_for(displayed: np.ndarray, name: str) -> np.ndarray:
    """The stored frames that matrix ``name`` displays as ``displayed``."""
    _, store = MATRICES[name]
    return np.ascontiguousarray(np.stack([store(frame) for frame in displayed]))


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return upright()


@pytest.mark.parametrize("name", list(MATRICES))
def test_frames_come_out_as_displayed(tmp_path: Path, source: np.ndarray, name: str) -> None:
    matrix, _ = MATRICES[name]
    path = tmp_path / "clip.mp4"
    write_video(path, stored_for(source, name), fps=10, display_matrix=matrix, quality=10)
    clip = read_video(path, 3)
    assert clip.frames.shape == source.shape
    assert np.abs(clip.frames.astype(int) - source.astype(int)).mean() < 6  # codec error only
    info = probe_video(path)
    assert (info.height, info.width) == source.shape[1:3]
    assert info.flipped == ("mirror" in name)
    if not info.flipped:
        assert info.rotation == int(name.split()[-1])


def test_autorotate_false_keeps_the_stored_frames(tmp_path: Path, source: np.ndarray) -> None:
    path = tmp_path / "clip.mp4"
    stored = stored_for(source, "rotate 90")
    write_video(path, stored, fps=10, display_matrix=MATRICES["rotate 90"][0], quality=10)
    assert read_frames(path, [0, 2], autorotate=False).frames.shape == (2, *stored.shape[1:])
    info = probe_video(path, autorotate=False)
    assert (info.width, info.height, info.rotation) == (stored.shape[2], stored.shape[1], 0)
    assert (probe_video(path).stored_width, probe_video(path).stored_height) == (info.width, info.height)


def test_anamorphic_pixels_are_made_square(tmp_path: Path) -> None:
    """A 32-pixel-wide stored frame with SAR 2:1 is displayed 64 wide: a stretched copy of the stored one."""
    wide = upright(height=32, width=64)
    squeezed = np.ascontiguousarray(wide[:, :, ::2])
    path = tmp_path / "anamorphic.mp4"
    write_video(path, squeezed, fps=10, sample_aspect=Fraction(2), quality=10)
    info = probe_video(path)
    assert info.anamorphic and info.sample_aspect_ratio == 2.0 and (info.width, info.height) == (64, 32)
    frames = read_video(path, 2).frames
    assert frames.shape == (2, 32, 64, 3)
    assert np.abs(frames.astype(int) - wide[:2].astype(int)).mean() < 12  # resampling + codec error


def test_a_non_right_angle_matrix_is_left_as_stored(caplog: pytest.LogCaptureFixture) -> None:
    c = round(ONE * 0.7071)
    orientation = Orientation.from_display_matrix([c, -c, 0, c, c, 0, 0, 0, W_ONE], source="x.mp4")
    assert orientation.identity and "not a rotation by a multiple of 90" in caplog.text


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (.ci/run installs it)")
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_matches_ffmpegs_own_autorotated_decode(tmp_path: Path, source: np.ndarray, degrees: int) -> None:
    """A clip tagged the way FFmpeg's CLI tags phone videos (``-metadata:s:v rotate``), decoded by ``ffmpeg``
    itself with its default autorotation: the same shape and near-equal pixels."""
    plain = tmp_path / "plain.mp4"
    write_video(plain, source, fps=10, quality=10)
    tagged = tmp_path / f"rot{degrees}.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={degrees}", str(tagged)], check=True)
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(tagged), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    clear_probe_cache()
    ours = read_frames(tagged, [0]).frames[0]
    assert len(raw) == ours.size
    theirs = np.frombuffer(raw, np.uint8).reshape(ours.shape)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 2
    assert ours.shape[:2] == ((64, 48) if degrees in (90, 270) else (48, 64))


def test_data_check_counts_rotated_files_and_fails_on_a_bad_one(tmp_path: Path, source: np.ndarray,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from chronoclip.cli import main

    write_video(tmp_path / "upright.mp4", source, fps=10)
    write_video(tmp_path / "phone.mp4", stored_for(source, "rotate 90"), fps=10,
                display_matrix=MATRICES["rotate 90"][0])
    (tmp_path / "manifest.csv").write_text("path,label\nupright.mp4,a\nphone.mp4,b\n", encoding="utf-8")
    assert main(["data", "check", str(tmp_path / "manifest.csv"), "--decode"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(
        "decoded 2 file(s): 2 ok, 0 bad; 1 rotated or mirrored, 0 anamorphic")
    data = (tmp_path / "upright.mp4").read_bytes()
    (tmp_path / "broken.mp4").write_bytes(data[: len(data) // 3])
    with open(tmp_path / "manifest.csv", "a", encoding="utf-8") as handle:
        handle.write("broken.mp4,a\n")
    assert main(["data", "check", str(tmp_path / "manifest.csv"), "--decode"]) == 1
    out = capsys.readouterr().out
    assert "row 3" in out and "broken.mp4" in out and out.strip().splitlines()[-1].startswith("decoded 3 file(s)")
    assert main(["data", "check", str(tmp_path / "manifest.csv"), "--decode", "--allow-bad", "1"]) == 0


def test_io_autorotate_reaches_the_samples_and_the_cache_key(tmp_path: Path, source: np.ndarray) -> None:
    from chronoclip.data.datasets import ManifestDataset, SampleSpec
    from chronoclip.data.manifest import load_manifest
    from chronoclip.engine.runs import build_run_config, with_io
    from chronoclip.io.orientation import ORIENTATION_RULES

    write_video(tmp_path / "phone.mp4", stored_for(source, "rotate 90"), fps=10,
                display_matrix=MATRICES["rotate 90"][0])
    (tmp_path / "m.csv").write_text("path,label,split\nphone.mp4,a,train\n", encoding="utf-8")
    spec = SampleSpec(frames=2, image_size=16, train_sampling="uniform")
    dataset = ManifestDataset(load_manifest(tmp_path / "m.csv"), spec, ["a"], train=True)
    cfg = build_run_config("frame-probe", tmp_path / "m.csv", overrides=["io.autorotate=false"])
    stored = with_io(dataset, cfg)
    assert isinstance(stored, ManifestDataset) and not stored.spec.autorotate and dataset.spec.autorotate
    assert dataset.spec.pixel_params(True)["orientation"] == ORIENTATION_RULES
    assert stored.spec.pixel_params(True)["orientation"] == "stored"
    assert with_io(dataset, build_run_config("frame-probe", tmp_path / "m.csv")) is dataset
