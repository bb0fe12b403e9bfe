"""Small composable blocks: conv + BatchNorm + ReLU (binary or float), SE and CBAM attention."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .binary import BinaryConv2d


@dataclass(frozen=True)
class ConvSpec:
    """How the convolutions of one part of the network are made."""

    binary: bool
    estimator: str = "approx_sign"
    standardize: bool = False
    bn_momentum: float = 0.1

    def conv(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1,
             bias: bool = False) -> nn.Conv2d:
        padding = dilation * (kernel - 1) // 2
        if self.binary:
            return BinaryConv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=bias,
                                estimator=self.estimator, standardize=self.standardize)
        return nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=bias)


class ConvBNReLU(nn.Sequential):
    def __init__(self, spec: ConvSpec, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1):
        super().__init__(spec.conv(cin, cout, kernel, stride, dilation, groups),
                         nn.BatchNorm2d(cout, momentum=spec.bn_momentum), nn.ReLU(inplace=True))


class SqueezeExcite(nn.Module):
    """Channel attention of eq. 8-10: global average pool, two-layer MLP (ReLU, sigmoid), scale."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mlp(x)


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018), for the ablation of Table 7."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.channel = SqueezeExcite(channels, reduction)
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel(x)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.spatial(pooled)
