"""CrissCross's audio and video augmentations (spec A.2), on tensors, one generator per call.

Two levels (:data:`AUGMENT_LEVELS`; ``none`` is the evaluation transform). ``strong`` is the released
recipe below. ``light`` keeps what identifies a class by its colour or its pitch, which ``strong`` is
built to be invariant to: no hue rotation, no grayscale, crops of at least 40 % of the frame, and the
spectrogram's resize-crop along time only (its frequency axis, hence the pitch, is left as it is).

Video (temporally consistent: one draw of every parameter for all frames of a clip), in order:
random resized crop (scale 0.08-1) and h-flip (reused from :mod:`chronoclip.data.transforms`), colour
jitter (brightness / contrast / saturation 0.4, hue 0.2, in random order), grayscale (p 0.2), Gaussian
blur (p 0.5, kernel 11 at 112 px scaled with the crop, σ ∈ [0.1, 2]), one cutout square of up to
20 px at 112 (scaled) filled with the clip mean, then normalisation.

Audio, on the waveform: volume ×U(0.8, 1.2); on the normalised log-mel: 2 frequency masks of width
U[0, 10] bins and 2 time masks of width U[0, 20] frames filled with the spectrogram mean (not zero),
then a BYOL-A random resize-crop (virtual canvas 1.0-1.5×, crop 0.6-1.5× per axis, resized back).

Hue is rotated in YIQ space (a linear approximation of torchvision's HSV hue shift, exact for grey).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from chronoclip.data import transforms as T

#: The ImageNet statistics CrissCross normalises video with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)
#: Train-time augmentation levels (``none``: the evaluation transform).
AUGMENT_LEVELS = ("strong", "light", "none")


def _rand(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * _rand(generator)


def _grey(clip: torch.Tensor) -> torch.Tensor:
    """Luma ``[T, 1, H, W]`` of a float RGB clip ``[T, 3, H, W]``."""
    weights = torch.tensor(_LUMA, dtype=clip.dtype).view(1, 3, 1, 1)
    return (clip * weights).sum(dim=1, keepdim=True)


def _rotate_hue(clip: torch.Tensor, turns: float) -> torch.Tensor:
    """Rotate the chroma of ``[T, 3, H, W]`` in YIQ space by ``turns`` of a full circle."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          dtype=clip.dtype)
    angle = 2 * math.pi * turns
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(angle), -math.sin(angle)],
                             [0.0, math.sin(angle), math.cos(angle)]], dtype=clip.dtype)
    matrix = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    return torch.einsum("ij,tjhw->tihw", matrix, clip)


def colour_jitter(clip: torch.Tensor, generator: torch.Generator, brightness: float = 0.4, contrast: float = 0.4,
                  saturation: float = 0.4, hue: float = 0.2) -> torch.Tensor:
    """torchvision-style colour jitter of a float ``[T, 3, H, W]`` clip in [0, 1], one draw per clip."""
    factors = {"brightness": _uniform(1 - brightness, 1 + brightness, generator),
               "contrast": _uniform(1 - contrast, 1 + contrast, generator),
               "saturation": _uniform(1 - saturation, 1 + saturation, generator),
               "hue": _uniform(-hue, hue, generator)}
    steps: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
        "brightness": lambda x, f: x * f,
        "contrast": lambda x, f: f * x + (1 - f) * _grey(x).mean(),
        "saturation": lambda x, f: f * x + (1 - f) * _grey(x),
        "hue": _rotate_hue,
    }
    for index in torch.randperm(4, generator=generator).tolist():
        name = list(steps)[index]
        clip = steps[name](clip, factors[name]).clamp(0, 1)
    return clip


def gaussian_blur(clip: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[T, C, H, W]`` with an odd ``kernel`` and reflect padding."""
    radius = kernel // 2
    x = torch.arange(-radius, radius + 1, dtype=clip.dtype)
    weights = torch.exp(-x.square() / (2 * sigma**2))
    weights = weights / weights.sum()
    channels = clip.shape[1]
    padded = F.pad(clip, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, weights.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, weights.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def cutout(clip: torch.Tensor, max_side: int, generator: torch.Generator) -> torch.Tensor:
    """Fill one random square of side U[1, max_side] (same place in all frames) with the clip mean."""
    height, width = clip.shape[-2:]
    side = min(1 + int(torch.randint(max(max_side, 1), (), generator=generator)), height, width)
    top = int(torch.randint(height - side + 1, (), generator=generator))
    left = int(torch.randint(width - side + 1, (), generator=generator))
    clip = clip.clone()
    clip[..., top:top + side, left:left + side] = clip.mean()
    return clip


def augment_video(clip: torch.Tensor, size: int, generator: torch.Generator,
                  mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                  level: str = "strong") -> torch.Tensor:
    """The train-time video augmentation (``strong`` or ``light``) of ``uint8 [T, 3, H, W]`` → normalised
    ``[T, 3, size, size]``."""
    strong = _is_strong(level)
    clip = T.random_resized_crop(clip, size, scale=(0.08 if strong else 0.4, 1.0), generator=generator)
    clip = T.random_horizontal_flip(clip, generator=generator)
    clip = clip.float() / 255.0 if clip.dtype == torch.uint8 else clip.float()
    clip = colour_jitter(clip, generator, hue=0.2 if strong else 0.0)
    if strong and _rand(generator) < 0.2:
        clip = _grey(clip).expand(-1, 3, -1, -1)
    if _rand(generator) < 0.5:
        kernel = max(3, 2 * round(5.5 * size / 112) + 1)
        clip = gaussian_blur(clip, kernel, _uniform(0.1, 2.0, generator))
    clip = cutout(clip, round(20 * size / 112), generator)
    return T.normalize(clip, mean, std)


def eval_video(clip: torch.Tensor, size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """The validation transform: resize the short side to ``size / 0.875``, centre crop, normalise."""
    resized = T.resize(clip, round(size / 0.875))
    return T.normalize(T.center_crop(resized, size), mean, std)


def mask_spectrogram(spec: torch.Tensor, generator: torch.Generator, freq_masks: int = 2, freq_width: int = 10,
                     time_masks: int = 2, time_width: int = 20) -> torch.Tensor:
    """SpecAugment masks on ``[1, M, F]``: widths U[0, max], masked cells set to the spectrogram's mean."""
    spec = spec.clone()
    fill = spec.mean()
    for axis, count, widest in ((-2, freq_masks, freq_width), (-1, time_masks, time_width)):
        length = spec.shape[axis]
        for _ in range(count):
            width = min(int(torch.randint(widest + 1, (), generator=generator)), length)
            start = int(torch.randint(length - width + 1, (), generator=generator))
            spec.narrow(axis, start, width).fill_(fill)
    return spec


def random_resize_crop_spectrogram(spec: torch.Tensor, generator: torch.Generator,
                                   virtual_scale: float = 1.5, scale: tuple[float, float] = (0.6, 1.5),
                                   along_frequency: bool = True) -> torch.Tensor:
    """BYOL-A random resize-crop of ``[1, M, F]``: place the map centred on a zero canvas of
    U(1, ``virtual_scale``)× its size, crop a window of U(``scale``)× its size per axis (clamped to the
    canvas) at a random place, resize it back to ``[1, M, F]`` (bilinear). Without ``along_frequency``
    only the time axis is cropped and resized: every mel bin keeps its frequency."""
    bins, frames = spec.shape[-2:]
    canvas_scale = _uniform(1.0, virtual_scale, generator)
    canvas_h, canvas_w = round(bins * canvas_scale) if along_frequency else bins, round(frames * canvas_scale)
    canvas = spec.new_zeros(1, canvas_h, canvas_w)
    top, left = (canvas_h - bins) // 2, (canvas_w - frames) // 2
    canvas[:, top:top + bins, left:left + frames] = spec
    crop_h = min(max(1, round(bins * _uniform(*scale, generator))), canvas_h) if along_frequency else bins
    crop_w = min(max(1, round(frames * _uniform(*scale, generator))), canvas_w)
    i = int(torch.randint(canvas_h - crop_h + 1, (), generator=generator))
    j = int(torch.randint(canvas_w - crop_w + 1, (), generator=generator))
    window = canvas[:, i:i + crop_h, j:j + crop_w].unsqueeze(0)
    return F.interpolate(window, size=(bins, frames), mode="bilinear", align_corners=False).squeeze(0)


def augment_spectrogram(spec: torch.Tensor, generator: torch.Generator, level: str = "strong") -> torch.Tensor:
    """The train-time augmentation (``strong`` or ``light``) of a normalised log-mel ``[1, M, F]``:
    SpecAugment masks, then the random resize-crop (along time only when ``light``)."""
    return random_resize_crop_spectrogram(mask_spectrogram(spec, generator), generator,
                                          along_frequency=_is_strong(level))


def _is_strong(level: str) -> bool:
    """Whether an augmenting ``level`` is ``strong`` rather than ``light`` (``none`` does not augment)."""
    if level not in ("strong", "light"):
        raise ValueError(f"augmentation level must be 'strong' or 'light' here, got '{level}'")
    return level == "strong"


def volume_jitter(wave: torch.Tensor, generator: torch.Generator, low: float = 0.8, high: float = 1.2
                  ) -> torch.Tensor:
    """Scale a waveform by U(``low``, ``high``)."""
    return wave * _uniform(low, high, generator)
