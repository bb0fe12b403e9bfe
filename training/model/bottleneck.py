"""Bottleneck: ASPP (eq. 11) then the Attention Network Part, self-attention over positions (eq. 12-14)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ConvBNReLU, ConvSpec
from .capacity import _split


class ASPP(nn.Module):
    """Parallel convolutions at several dilation rates, concatenated to `out_channels`. 3x3 kernels are
    our choice: eq. 11 writes D_r, and the paper's D (eq. 4) is a 7x7 dilated convolution."""

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...], spec: ConvSpec):
        super().__init__()
        self.branches = nn.ModuleList(ConvBNReLU(spec, in_channels, w, dilation=r)
                                      for w, r in zip(_split(out_channels, len(rates)), rates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class PositionAttention(nn.Module):
    """softmax(Q K^T / sqrt(d_k)) V over the H*W positions (eq. 12-14).

    The attention matrix has (H*W) x (H*W / kv_pool^2) entries, so keys and values can be
    average-pooled by `kv_pool` to keep large inputs practical (docs/model.md gives the memory).
    The result is added to the input through a learned gate that starts at 0 (as in SAGAN), so
    the block starts as identity and training decides how much global context to mix in.
    """

    def __init__(self, channels: int, spec: ConvSpec, key_ratio: int = 8, kv_pool: int = 1):
        super().__init__()
        self.key_channels = max(channels // key_ratio, 8)
        self.query = spec.conv(channels, self.key_channels, 1)
        self.key = spec.conv(channels, self.key_channels, 1)
        self.value = spec.conv(channels, channels, 1)
        self.kv_pool = kv_pool
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        kv = F.avg_pool2d(x, self.kv_pool) if self.kv_pool > 1 else x
        q = self.query(x).flatten(2).transpose(1, 2)                # n, hw, dk
        k = self.key(kv).flatten(2)                                  # n, dk, hw'
        v = self.value(kv).flatten(2).transpose(1, 2)                # n, hw', c
        attention = torch.softmax(q @ k / math.sqrt(self.key_channels), dim=-1)
        out = (attention @ v).transpose(1, 2).reshape(n, c, h, w)
        return x + self.gate * out
