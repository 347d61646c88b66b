"""chronoclip.io.image: RGB uint8 arrays, EXIF orientation, mode conversion, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chronoclip.errors import MediaError
from chronoclip.io.image import load_image
from chronoclip.io.writers import write_png

ORIENTATION = 0x0112


def gradient(height: int = 20, width: int = 30) -> np.ndarray:
    """``uint8 [H, W, 3]`` with distinct rows and columns, so flips and rotations are detectable."""
    rows = np.linspace(0, 250, height, dtype=np.uint8)[:, None]
    cols = np.linspace(0, 250, width, dtype=np.uint8)[None, :]
    return np.stack([np.broadcast_to(rows, (height, width)), np.broadcast_to(cols, (height, width)),
                     np.full((height, width), 128, np.uint8)], axis=-1)


def test_png_round_trip(tmp_path: Path) -> None:
    pixels = gradient()
    write_png(tmp_path / "a.png", pixels)
    loaded = load_image(tmp_path / "a.png")
    assert loaded.dtype == np.uint8 and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, pixels)


def test_exif_orientation_6_is_rotated_upright(tmp_path: Path) -> None:
    """Orientation 6 = the camera was turned 90° clockwise: stored 20x30 is shown 30x20."""
    pixels = gradient(20, 30)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.shape == (30, 20, 3)
    expected = np.rot90(pixels, k=-1)  # 90° clockwise
    assert np.abs(loaded.astype(int) - expected.astype(int)).mean() < 4  # JPEG loss only


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I;16"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    source = Image.fromarray(gradient())
    image = source.convert("L").convert("I;16") if mode == "I;16" else source.convert(mode)
    suffix = ".tif" if mode == "CMYK" else ".png"
    path = tmp_path / f"image{suffix}"
    image.save(path)
    loaded = load_image(path)
    assert loaded.shape == (20, 30, 3) and loaded.dtype == np.uint8
    if mode in ("L", "LA"):
        np.testing.assert_array_equal(loaded, np.asarray(source.convert("L").convert("RGB")))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(loaded[..., 0], np.rint(grey16 / 65535 * 255).astype(np.uint8))
    assert np.array_equal(loaded[..., 0], loaded[..., 2])


def test_bad_images_are_media_errors_naming_the_file(tmp_path: Path) -> None:
    write_png(tmp_path / "good.png", gradient())
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"this is not an image")
    cases = {"missing.png": "file not found", "empty.jpg": "empty", "text.jpg": "cannot decode",
             "truncated.png": "cannot decode"}
    for name, phrase in cases.items():
        with pytest.raises(MediaError, match=phrase) as err:
            load_image(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
