"""Image reading with Pillow: RGB ``uint8`` arrays, EXIF orientation applied."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chronoclip.errors import MediaError
from chronoclip.io.files import stat_media

# Modes holding one channel of more than 8 bits; scaled to 0..255 before the RGB conversion (Pillow's
# own conversion of these to RGB clips at 255 instead of scaling).
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB, rotated/flipped as its EXIF ``Orientation`` tag says.

    Grey, grey+alpha, palette, CMYK and RGBA images are converted to RGB (alpha is dropped, not
    composited). 16-bit and float grey images are scaled by their maximum possible value (65535 for
    16-bit, the image's own maximum for 32-bit int/float) to 0..255.

    Returns:
        ``uint8 [H, W, 3]`` array (H, W after the EXIF transpose, as the image is meant to be viewed).

    Raises:
        MediaError: missing, empty, truncated or unreadable file.
    """
    path = Path(path)
    stat_media(path)
    try:
        with Image.open(path) as image, warnings.catch_warnings():
            # Pillow warns (not raises) on some broken EXIF blocks; the pixels are still fine.
            warnings.simplefilter("ignore", UserWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(path, f"cannot decode image ({exc})",
                         hint="the file may be corrupt, truncated or not an image") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB pixels of any Pillow image mode."""
    if image.mode in _WIDE_GREY_MODES:
        grey = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") else max(float(grey.max()), 1e-12)
        grey8 = np.clip(np.rint(grey / scale * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)
