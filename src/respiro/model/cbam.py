"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018).

Layout follows timm `layers/cbam.py`: one class per idea, and `CBAM` applies channel
attention then spatial attention, each a sigmoid gate multiplied into its input.

Parameter choices (the paper's equations show no biases; the authors' code differs):

- The shared channel MLP has biases, as in the authors' code (`nn.Linear` layers). It is
  written with 1x1 convolutions so it runs on `(B, C, 1, 1)` descriptors without reshaping.
  Hidden width is `max(channels // reduction, 1)`, so a reduction larger than the channel
  count still leaves one hidden unit instead of an empty layer.
- The spatial 7x7 convolution has a bias and no BatchNorm. The authors' code uses a
  bias-free conv followed by BatchNorm on its single output channel; at inference that BN is
  an affine map of one channel, which folds into the conv weight and this one bias, so the
  two are the same function family without running statistics on a one-channel map.

Parameters added by one `CBAM(C, r)`, with `h = max(C // r, 1)`:
`2*C*h + h + C` (MLP weights and biases) `+ 2*7*7 + 1` (spatial conv weight and bias).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """Channel gate: `sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))` with one shared MLP.

    `(B, C, H, W) -> (B, C, H, W)`; the gate has shape `(B, C, 1, 1)`.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))  # (B, C, 1, 1)
        mx = self.mlp(x.amax((2, 3), keepdim=True))  # (B, C, 1, 1)
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Spatial gate: `sigmoid(conv7x7(cat[mean_c(x), max_c(x)]))`.

    `(B, C, H, W) -> (B, C, H, W)`; the gate has shape `(B, 1, H, W)`. Padding keeps H, W, so
    any map size works, down to 1x1.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        desc = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return x * torch.sigmoid(self.conv(desc))


class CBAM(nn.Module):
    """Channel attention, then spatial attention: `(B, C, H, W) -> (B, C, H, W)`."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))
