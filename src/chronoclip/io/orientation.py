"""How a video's stored frames become the frames a player shows: display matrix and sample aspect ratio.

Phone videos are stored in the sensor's orientation with a *display matrix* (MP4 ``tkhd`` / FFmpeg's
``AV_FRAME_DATA_DISPLAYMATRIX`` side data) that says how to turn them upright; anamorphic video (DV, some
broadcast SD) stores non-square pixels with a *sample aspect ratio* (SAR). The rules, as FFmpeg's player
and its ``-autorotate`` decode apply them:

- **Display matrix** ``[a b u; c d v; x y w]`` maps a stored pixel ``(x, y)`` to ``(a·x + c·y, b·x + d·y)``
  (plus a translation). Only the eight axis-aligned matrices (rotations by multiples of 90°, each with or
  without a mirror) are applied; any other angle is logged and left as stored.
- **Sample aspect ratio** ``SAR ≠ 1``: the stored width is rescaled to ``round(W · SAR)`` (height kept), so
  pixels are square and circles stay round; applied before the display matrix (SAR is of stored pixels).

Example:
    >>> import numpy as np
    >>> o = Orientation.from_display_matrix([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30])  # 90° anticlockwise
    >>> o.rotation, o.displayed_size(64, 48)
    (90, (48, 64))
    >>> o.apply(np.arange(6).reshape(2, 3, 1)).shape
    (3, 2, 1)
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

logger = logging.getLogger(__name__)

#: Version of the rules above; part of every feature-cache key of decoded pixels, so features decoded
#: under older rules (stored orientation) are never reused.
ORIENTATION_RULES = "display-matrix+sar/1"


@dataclass(frozen=True)
class Orientation:
    """The transform from stored to displayed frames.

    Attributes:
        transpose: swap rows and columns first (90° and 270° rotations, and the two diagonal mirrors).
        flip_rows, flip_cols: then reverse the row (vertical) / column (horizontal) order.
        sample_aspect: the stored pixels' width : height (1 for square pixels).
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    sample_aspect: Fraction = Fraction(1)

    @classmethod
    def from_display_matrix(cls, matrix: Sequence[int] | None, sample_aspect: Fraction | None = None,
                            source: str = "") -> Orientation:
        """The orientation of FFmpeg's 9-integer display matrix (16.16 fixed point; ``None``: upright)."""
        sar = sample_aspect if sample_aspect and sample_aspect > 0 else Fraction(1)
        if matrix is None:
            return cls(sample_aspect=sar)
        a, b, c, d = (round(value / 65536) for value in (matrix[0], matrix[1], matrix[3], matrix[4]))
        if a == d == 0 and abs(b) == abs(c) == 1:
            return cls(transpose=True, flip_rows=b < 0, flip_cols=c < 0, sample_aspect=sar)
        if b == c == 0 and abs(a) == abs(d) == 1:
            return cls(flip_rows=d < 0, flip_cols=a < 0, sample_aspect=sar)
        logger.warning("%s: display matrix %s is not a rotation by a multiple of 90 degrees; frames are left "
                       "as stored", source or "video", list(matrix))
        return cls(sample_aspect=sar)

    def _matrix(self) -> tuple[int, int, int, int]:
        """The axis-aligned matrix ``(a, b, c, d)`` this orientation applies."""
        if self.transpose:
            return 0, (-1 if self.flip_rows else 1), (-1 if self.flip_cols else 1), 0
        return (-1 if self.flip_cols else 1), 0, 0, (-1 if self.flip_rows else 1)

    @property
    def rotation(self) -> int:
        """Anticlockwise rotation in degrees (0, 90, 180, 270), as FFmpeg's ``av_display_rotation_get`` (and
        PyAV's ``VideoFrame.rotation``) state it, modulo 360."""
        a, b, _, _ = self._matrix()
        return round(-math.degrees(math.atan2(b, a))) % 360

    @property
    def flipped(self) -> bool:
        """Whether the matrix mirrors (its determinant is negative)."""
        a, b, c, d = self._matrix()
        return a * d - b * c < 0

    @property
    def identity(self) -> bool:
        """Whether displayed frames are the stored ones."""
        return not (self.transpose or self.flip_rows or self.flip_cols) and self.sample_aspect == 1

    def square_width(self, width: int) -> int:
        """The stored width once pixels are square."""
        return max(1, round(width * self.sample_aspect))

    def displayed_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the displayed frames of ``width × height`` stored ones."""
        width = self.square_width(width)
        return (height, width) if self.transpose else (width, height)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The displayed ``[H', W', C]`` frame of a square-pixel stored ``[H, W, C]`` frame (SAR is applied
        when decoding, by the scaler: see :func:`chronoclip.io.video.read_frames`)."""
        if self.transpose:
            frame = frame.transpose(1, 0, *range(2, frame.ndim))
        if self.flip_rows:
            frame = frame[::-1]
        if self.flip_cols:
            frame = frame[:, ::-1]
        return np.ascontiguousarray(frame)


def display_matrix_of(side_data: object) -> list[int] | None:
    """The 9 integers of a decoded frame's display-matrix side data (PyAV ``frame.side_data``), or ``None``."""
    for entry in side_data:  # type: ignore[attr-defined]
        if str(getattr(entry, "type", "")).upper().endswith("DISPLAYMATRIX"):
            raw = bytes(entry)
            if len(raw) >= 36:
                return list(struct.unpack("<9i", raw[:36]))
    return None
