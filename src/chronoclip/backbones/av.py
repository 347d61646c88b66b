"""Small-CNN encoders for audio-visual self-supervision (CrissCross, spec A.2): not CLIP towers.

- :class:`R2Plus1D`: R(2+1)D-18, AVID-CMA variant. Stem: a full 3-D conv (3,7,7) stride (1,2,2), BN,
  ReLU, max-pool (1,3,3) stride (1,2,2). Four stages of two blocks; a block is spatial (1,3,3) → BN →
  ReLU → temporal (3,1,1) → BN → ReLU → spatial → BN → ReLU → temporal, then + residual, BN, ReLU (the
  intermediate width equals the output width). The first block of stages 2-4 strides (2,2,2); the
  residual is a 1×1×1 conv (+ BN) when the shape changes. Global average pool.
  ``[B, 3, 8, 112, 112]`` → stages ``[B,64,8,28,28] / [B,128,4,14,14] / [B,256,2,7,7] / [B,512,1,4,4]``
  → ``[B, 512]``.
- :class:`AudioResNet`: ResNet-18 (torchvision-style BasicBlocks) on a 1-channel log-mel map. Stem 7×7
  stride 2, BN, ReLU, 3×3 max-pool stride 2; stages 64/128/256/512 with strides 1/2/2/2; Kaiming-normal
  conv init, no zero-init of the last BN. ``[B, 1, 80, 201]`` → ``[B, 512, 3, 7]`` → ``[B, 512]``.

``width`` scales every stage (64 is the published size; 16 is the tiny one of the synthetic benchmark),
so the feature size is ``8 × width``.
"""

from __future__ import annotations

import torch
from torch import nn


def _bn_relu(channels: int, dims: int) -> list[nn.Module]:
    norm: nn.Module = nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm2d(channels)
    return [norm, nn.ReLU(inplace=True)]


def _resnet18_stages(block: type[nn.Module], widths: list[int]) -> nn.Sequential:
    """ResNet-18's four stages of two ``block(in, out, stride)`` each; every stage but the first halves the
    resolution; the input has ``widths[0]`` channels."""
    stages, channels = [], widths[0]
    for index, out in enumerate(widths):
        stages.append(nn.Sequential(block(channels, out, 1 if index == 0 else 2), block(out, out, 1)))
        channels = out
    return nn.Sequential(*stages)


def _kaiming_init(model: nn.Module, conv: type[nn.Conv2d] | type[nn.Conv3d]) -> None:
    """He (fan-out) initialisation of every ``conv`` layer's weight, as torchvision's ResNets do."""
    for module in model.modules():
        if isinstance(module, conv):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


class _R2Plus1DBlock(nn.Module):
    """Spatial / temporal factorised residual block (AVID-CMA layout)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        s = (1, stride, stride)
        t = (stride, 1, 1)
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, (1, 3, 3), s, (0, 1, 1), bias=False), *_bn_relu(out_channels, 3),
            nn.Conv3d(out_channels, out_channels, (3, 1, 1), t, (1, 0, 0), bias=False), *_bn_relu(out_channels, 3),
            nn.Conv3d(out_channels, out_channels, (1, 3, 3), 1, (0, 1, 1), bias=False), *_bn_relu(out_channels, 3),
            nn.Conv3d(out_channels, out_channels, (3, 1, 1), 1, (1, 0, 0), bias=False))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv3d(in_channels, out_channels, 1, stride, bias=False)
        self.out = nn.Sequential(*_bn_relu(out_channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class R2Plus1D(nn.Module):
    """R(2+1)D-18 video encoder: ``[B, T, 3, H, W]`` (the library's video layout) → ``[B, 8·width]``.

    Args:
        width: channels of the first stage (64 = R(2+1)D-18).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  *_bn_relu(width, 3), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.stages = _resnet18_stages(_R2Plus1DBlock, widths)
        self.out_dim = widths[-1]
        _kaiming_init(self, nn.Conv3d)

    def feature_map(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` → the last stage's map ``[B, 8·width, T', H', W']``."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"video must be [B, T, 3, H, W], got {tuple(video.shape)}")
        return self.stages(self.stem(video.transpose(1, 2)))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.feature_map(video).mean(dim=(2, 3, 4))


class _BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), *_bn_relu(out_channels, 2),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class AudioResNet(nn.Module):
    """ResNet-18 audio encoder: log-mel ``[B, 1, M, F]`` → ``[B, 8·width]``.

    Args:
        width: channels of the first stage (64 = ResNet-18).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(1, width, 7, 2, 3, bias=False), *_bn_relu(width, 2),
                                  nn.MaxPool2d(3, 2, 1))
        self.stages = _resnet18_stages(_BasicBlock, widths)
        self.out_dim = widths[-1]
        _kaiming_init(self, nn.Conv2d)

    def feature_map(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """``[B, 1, M, F]`` → the last stage's map ``[B, 8·width, M', F']`` (``[B,512,3,7]`` for 80×201)."""
        if spectrogram.ndim != 4 or spectrogram.shape[1] != 1:
            raise ValueError(f"log-mel input must be [B, 1, n_mels, frames], got {tuple(spectrogram.shape)}")
        return self.stages(self.stem(spectrogram))

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.feature_map(spectrogram).mean(dim=(2, 3))
