"""Image and clip transforms on tensors, without torchvision.

Every transform takes an image ``[3, H, W]`` or a clip ``[T, 3, H, W]`` (any leading dimensions work:
the last three are channels, height, width) and treats a clip as one unit: geometric operations
act on the last two dimensions, so every frame gets the same resize, crop and flip, and a random
transform draws *one* set of parameters per call. Randomness comes from the ``generator`` given
(or held by the transform object); with ``None`` the global torch RNG is used, which is what you
want inside ``DataLoader`` workers, since each worker reseeds it (a held generator would be copied
into every worker with the same state and repeat the same augmentations).

``uint8`` input stays ``uint8`` through :func:`resize`, :func:`crop` and :func:`horizontal_flip`
(resizing ``uint8`` uses torch's integer kernel, which rounds and clamps like PIL, so results match
PIL's bicubic to about one grey level); :func:`normalize` turns ``uint8`` into float in [0, 1] before
normalising. Float input is expected in [0, 1] and is not clamped after resizing (bicubic overshoot
is kept).

Example:
    >>> import torch
    >>> from chronoclip.data.transforms import clip_preprocess
    >>> frames = torch.randint(0, 256, (8, 3, 240, 320), dtype=torch.uint8)
    >>> clip_preprocess(224)(frames).shape
    torch.Size([8, 3, 224, 224])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

#: OpenAI CLIP's normalisation constants (RGB).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
#: ImageNet normalisation constants (RGB), used by most non-CLIP backbones.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Size = int | tuple[int, int]
Transform = Callable[[torch.Tensor], torch.Tensor]


def _pair(size: Size) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair."""
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"sizes must be positive, got {size}")
    return int(height), int(width)


def _check_image(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a tensor [..., C, H, W] (an image [3,H,W] or a clip [T,3,H,W]), "
                         f"got {shape}")


def channels_first(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Channels-last frames as decoded (``[H, W, 3]`` or ``[T, H, W, 3]``) as a ``[..., 3, H, W]`` tensor.

    The dtype is kept (a view where possible): feed ``uint8`` straight into :func:`clip_preprocess`
    for the closest match with PIL-based preprocessing.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim < 3:
        raise ValueError(f"expected channels-last frames [..., H, W, C], got shape {tuple(tensor.shape)}")
    return tensor.movedim(-1, -3)


def to_float_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Channels-last frames (``[H, W, 3]`` or ``[T, H, W, 3]``) to contiguous float32 ``[..., 3, H, W]``.

    ``uint8`` values are scaled to [0, 1]; float input is taken to be in [0, 1] already.
    """
    tensor = channels_first(frames)
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255.0).contiguous()
    if tensor.is_floating_point():
        return tensor.float().contiguous()
    raise ValueError(f"expected uint8 or float frames, got {tensor.dtype}")


def output_size(height: int, width: int, size: Size, shortest_side: bool = True) -> tuple[int, int]:
    """The ``(height, width)`` :func:`resize` produces for an input of ``height x width``.

    An int ``size`` sets the shortest side (or, with ``shortest_side=False``, the longest side) and
    keeps the aspect ratio, truncating the other side like torchvision and transformers do; a pair
    is the exact ``(height, width)``.
    """
    if not isinstance(size, int):
        return _pair(size)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    short, long = sorted((height, width))
    target = size if shortest_side else int(size * short / long)
    scaled_long = int(target * long / short) if shortest_side else size
    return (target, scaled_long) if height <= width else (scaled_long, target)


def resize(x: torch.Tensor, size: Size, shortest_side: bool = True) -> torch.Tensor:
    """Bicubic resize with antialiasing of an image or every frame of a clip (see :func:`output_size`).

    Args:
        x: ``[..., C, H, W]`` uint8 or float.
        size: an int for aspect-preserving resizing, or ``(height, width)``.
        shortest_side: with an int ``size``, whether it sets the shortest (default) or longest side.

    Returns:
        The resized tensor with the same dtype and leading dimensions.
    """
    _check_image(x)
    height, width = x.shape[-2:]
    new_height, new_width = output_size(height, width, size, shortest_side)
    if (new_height, new_width) == (height, width):
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    if flat.dtype == torch.uint8 and flat.device.type == "cpu":
        out = F.interpolate(flat, size=(new_height, new_width), mode="bicubic", antialias=True)
    elif flat.dtype == torch.uint8:
        # CUDA has no uint8 antialiased bicubic kernel (checked on torch 2.11): compute in float and round
        # back. Without PIL's clamping between the two passes this can differ from the CPU result by a
        # few grey levels at sharp edges.
        out = F.interpolate(flat.float(), size=(new_height, new_width), mode="bicubic", antialias=True)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = F.interpolate(flat, size=(new_height, new_width), mode="bicubic", antialias=True)
    return out.reshape(*x.shape[:-2], new_height, new_width)


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The ``height x width`` window at ``(top, left)`` of an image or of every frame of a clip.

    Raises:
        ValueError: the window does not lie inside the image.
    """
    _check_image(x)
    full_height, full_width = x.shape[-2:]
    inside = top >= 0 and left >= 0 and top + height <= full_height and left + width <= full_width
    if not inside or height <= 0 or width <= 0:
        raise ValueError(f"crop {height}x{width} at ({top}, {left}) does not fit in "
                         f"{full_height}x{full_width}")
    return x[..., top:top + height, left:left + width]


def center_crop(x: torch.Tensor, size: Size) -> torch.Tensor:
    """The central ``size`` window (an int is square); offsets are floored like transformers' CLIP."""
    _check_image(x)
    height, width = _pair(size)
    full_height, full_width = x.shape[-2:]
    return crop(x, (full_height - height) // 2, (full_width - width) // 2, height, width)


def crop_boxes(height: int, width: int, size: int | tuple[int, int], num_crops: int = 1) -> torch.Tensor:
    """``int64 [num_crops, 4]`` crop windows ``(top, left, crop_height, crop_width)`` in a frame.

    ``num_crops=1`` is the centre crop; ``num_crops=3`` the start / centre / end crops along the
    longer side, centred on the shorter side (the 3-crop test protocol, which sees the whole frame
    after a shortest-side resize to ``size``). The boxes use the argument order of
    :func:`crop`.

    Examples:
        >>> crop_boxes(224, 398, 224, num_crops=3).tolist()
        [[0, 0, 224, 224], [0, 87, 224, 224], [0, 174, 224, 224]]
    """
    crop_height, crop_width = (size, size) if isinstance(size, int) else size
    if not (0 < crop_height <= height and 0 < crop_width <= width):
        raise ValueError(f"crop {crop_height}x{crop_width} does not fit in a {height}x{width} frame")
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 (centre) or 3 (start/centre/end); got {num_crops}")
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    if num_crops == 1:
        return torch.tensor([[top, left, crop_height, crop_width]])
    if width >= height:
        positions = [(top, 0), (top, left), (top, width - crop_width)]
    else:
        positions = [(0, left), (top, left), (height - crop_height, left)]
    return torch.tensor([[y, x, crop_height, crop_width] for y, x in positions])


def take_crops(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Cut every box of :func:`crop_boxes` out of ``frames [..., H, W]`` -> ``[num_crops, ..., h, w]``.

    All boxes must have the same size (they do when made by :func:`crop_boxes`).

    Examples:
        >>> video = torch.zeros(8, 3, 224, 398)  # [T, 3, H, W]
        >>> take_crops(video, crop_boxes(224, 398, 224, num_crops=3)).shape
        torch.Size([3, 8, 3, 224, 224])
    """
    return torch.stack([frames[..., y:y + h, x:x + w] for y, x, h, w in boxes.tolist()])


def horizontal_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror an image or every frame of a clip left-right."""
    _check_image(x)
    return x.flip(-1)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel; ``uint8`` input is first scaled to float [0, 1].

    Returns:
        A float tensor (float32 for ``uint8`` input) of the same shape.
    """
    _check_image(x)
    if len(mean) != x.shape[-3] or len(std) != x.shape[-3]:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {x.shape[-3]} channels")
    values = x.float().div(255.0) if x.dtype == torch.uint8 else x
    shape = (len(mean), 1, 1)
    mean_t = torch.tensor(mean, dtype=values.dtype, device=values.device).reshape(shape)
    std_t = torch.tensor(std, dtype=values.dtype, device=values.device).reshape(shape)
    return (values - mean_t) / std_t


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in ``[0, high]`` (inclusive)."""
    return int(torch.randint(high + 1, (), generator=generator))


def random_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Draw a crop window ``(top, left, crop_height, crop_width)`` covering a random area and aspect.

    The area fraction is uniform in ``scale`` and the aspect ratio (width / height) log-uniform in
    ``ratio``; up to ten draws are tried, then the largest centred window whose aspect is clamped
    into ``ratio`` is used (the Inception-style crop behind "random resized crop").
    """
    if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], "
                         f"got scale={scale}, ratio={ratio}")
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_low, log_high, generator))
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = _randint(height - crop_height, generator)
            left = _randint(width - crop_width, generator)
            return top, left, crop_height, crop_width
    aspect = width / height
    crop_height, crop_width = height, width
    if aspect < ratio[0]:
        crop_height = round(width / ratio[0])
    elif aspect > ratio[1]:
        crop_width = round(height * ratio[1])
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def random_resized_crop(
    x: torch.Tensor,
    size: Size,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop one random window (see :func:`random_crop_box`) from every frame and resize it to ``size``."""
    _check_image(x)
    top, left, height, width = random_crop_box(x.shape[-2], x.shape[-1], scale, ratio, generator)
    return resize(crop(x, top, left, height, width), _pair(size))


def random_horizontal_flip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip the whole image or clip with probability ``p`` (one coin for all frames)."""
    _check_image(x)
    return horizontal_flip(x) if float(torch.rand((), generator=generator)) < p else x


@dataclass
class Resize:
    """Pipeline step for :func:`resize`."""

    size: Size
    shortest_side: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.size, self.shortest_side)


@dataclass
class CenterCrop:
    """Pipeline step for :func:`center_crop`."""

    size: Size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return center_crop(x, self.size)


@dataclass
class RandomResizedCrop:
    """Pipeline step for :func:`random_resized_crop`; ``generator=None`` uses the global RNG."""

    size: Size
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    generator: torch.Generator | None = field(default=None, repr=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_resized_crop(x, self.size, self.scale, self.ratio, self.generator)


@dataclass
class RandomHorizontalFlip:
    """Pipeline step for :func:`random_horizontal_flip`; ``generator=None`` uses the global RNG."""

    p: float = 0.5
    generator: torch.Generator | None = field(default=None, repr=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_horizontal_flip(x, self.p, self.generator)


@dataclass
class Normalize:
    """Pipeline step for :func:`normalize` (CLIP constants by default)."""

    mean: Sequence[float] = CLIP_MEAN
    std: Sequence[float] = CLIP_STD

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.std)


class Compose:
    """Apply transforms in order: ``Compose(Resize(224), CenterCrop(224), Normalize())(x)``."""

    def __init__(self, *steps: Transform) -> None:
        self.steps = list(steps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.steps))})"


def clip_preprocess(
    image_size: int = 224, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> Compose:
    """CLIP's evaluation pipeline: resize the shortest side to ``image_size``, centre-crop, normalise.

    Takes ``uint8`` or float [0, 1] ``[..., 3, H, W]`` and returns float ``[..., 3, S, S]``; on
    ``uint8`` input it matches ``transformers.CLIPImageProcessorPil`` to within a grey level or two
    (see tests/test_transforms.py for the measured bound).
    """
    return Compose(Resize(image_size), CenterCrop(image_size), Normalize(mean, std))
