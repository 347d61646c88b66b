"""Tensor transforms: shapes, dtypes, clip consistency, determinism, and parity with transformers' CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chronoclip.data import transforms as T


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A uint8 [H, W, 3] image with photo-like smooth structure plus a little noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
    noise = rng.integers(-8, 9, smooth.shape)
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def test_to_float_tensor_moves_channels_and_scales() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    out = T.to_float_tensor(frames)
    assert out.shape == (4, 3, 6, 5) and out.dtype == torch.float32
    assert torch.allclose(out[2, 1], torch.from_numpy(frames[2, :, :, 1]).float() / 255)
    assert T.to_float_tensor(torch.from_numpy(frames[0])).shape == (3, 6, 5)
    assert T.channels_first(frames).dtype == torch.uint8 and T.channels_first(frames).shape == (4, 3, 6, 5)
    with pytest.raises(ValueError, match="uint8 or float"):
        T.to_float_tensor(frames.astype(np.int32))


@pytest.mark.parametrize(("hw", "size", "shortest", "expected"), [
    ((480, 640), 224, True, (224, 298)),
    ((640, 480), 224, True, (298, 224)),
    ((480, 640), 320, False, (240, 320)),
    ((100, 100), 50, True, (50, 50)),
    ((480, 640), (10, 20), True, (10, 20)),
])
def test_resize_sizes(hw: tuple[int, int], size: T.Size, shortest: bool, expected: tuple[int, int]) -> None:
    clip = torch.zeros(2, 3, *hw, dtype=torch.uint8)
    out = T.resize(clip, size, shortest_side=shortest)
    assert out.shape == (2, 3, *expected) and out.dtype == torch.uint8
    assert T.resize(clip.float(), size, shortest_side=shortest).dtype == torch.float32


def test_center_crop_offsets_and_errors() -> None:
    image = torch.arange(3 * 7 * 9).reshape(3, 7, 9)
    assert torch.equal(T.center_crop(image, (4, 4)), image[:, 1:5, 2:6])  # floor((7-4)/2), floor((9-4)/2)
    with pytest.raises(ValueError, match="does not fit"):
        T.center_crop(image, 8)
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        T.center_crop(torch.zeros(5, 5), 2)


def test_normalize_uint8_equals_float() -> None:
    image = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    a = T.normalize(image, T.IMAGENET_MEAN, T.IMAGENET_STD)
    b = T.normalize(image.float() / 255, T.IMAGENET_MEAN, T.IMAGENET_STD)
    assert torch.allclose(a, b)
    assert torch.allclose(a[1], (image[1].float() / 255 - 0.456) / 0.224)
    with pytest.raises(ValueError, match="channels"):
        T.normalize(torch.zeros(1, 4, 4), T.CLIP_MEAN, T.CLIP_STD)


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (100, 300), (150, 120), (37, 501), (224, 224)])
def test_clip_preprocess_matches_transformers_pil(hw: tuple[int, int]) -> None:
    transformers = pytest.importorskip("transformers")
    processor = transformers.CLIPImageProcessorPil()  # the PIL-backed one; the fast one needs torchvision
    image = _photo(*hw, seed=hw[0] * 1000 + hw[1])
    expected = processor(images=Image.fromarray(image), return_tensors="pt")["pixel_values"][0]
    ours = T.clip_preprocess(224)(T.channels_first(image))
    assert ours.shape == expected.shape == (3, 224, 224)
    diff = (ours - expected).abs()
    # Measured on these and on pure-noise images (torch 2.13, Pillow 13): max 0.0300, mean <= 1.2e-4.
    # torch's uint8 antialiased bicubic mirrors PIL's fixed-point kernel, so outputs differ by at most
    # 2 grey levels after resizing (2 / 255 / CLIP_STD[1] = 0.0300 in normalised units), rarely.
    assert diff.max().item() <= 0.035
    assert diff.mean().item() <= 3e-4


def _ramp_clip(frames: int = 5) -> torch.Tensor:
    """A float clip whose frame t is the same random image plus t, so frame t - frame 0 == t after
    any geometric transform that treats every frame the same way."""
    base = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(0))
    return base + torch.arange(frames, dtype=torch.float32).reshape(-1, 1, 1, 1)


def test_random_transforms_apply_one_crop_and_flip_to_every_frame() -> None:
    clip = _ramp_clip()
    augment = T.Compose(T.RandomResizedCrop(16, scale=(0.2, 0.5), generator=torch.Generator().manual_seed(3)),
                        T.RandomHorizontalFlip(p=0.5, generator=torch.Generator().manual_seed(4)))
    for _ in range(5):
        out = augment(clip)
        assert out.shape == (5, 3, 16, 16)
        offsets = out - out[:1]
        assert torch.allclose(offsets, torch.arange(5.0).reshape(-1, 1, 1, 1).expand_as(out), atol=1e-4)


def test_random_transforms_are_deterministic_with_a_seeded_generator() -> None:
    clip = _ramp_clip()

    def run(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        crops = [T.random_resized_crop(clip, 8, generator=generator) for _ in range(4)]
        return [T.random_horizontal_flip(c, generator=generator) for c in crops]

    first, again, other = run(7), run(7), run(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_random_crop_box_stays_inside_and_falls_back_to_a_centred_box() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, height, width = T.random_crop_box(30, 50, (0.08, 1.0), (0.75, 4 / 3), generator)
        assert top >= 0 and left >= 0 and top + height <= 30 and left + width <= 50
    # An aspect range no window of the whole area can satisfy: the fallback clamps the aspect to 2.
    assert T.random_crop_box(30, 90, (1.0, 1.0), (1.0, 2.0), generator) == (0, 15, 30, 60)


def test_clip_preprocess_on_a_clip_and_repr() -> None:
    pipeline = T.clip_preprocess(32)
    out = pipeline(torch.randint(0, 256, (3, 3, 48, 64), dtype=torch.uint8))
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    assert repr(pipeline).startswith("Compose(Resize(size=32")
