"""The Capacity Block (eq. 3-10, Fig. 3) and the multi-scale blocks it is compared with (Table 7).

Parallel branches see the same input; their outputs are concatenated to the input's width and
re-weighted by channel attention. A residual connection keeps input and output the same shape
(Table 1) and gives binary layers the real-valued shortcut they need (as in Bi-Real Net).
"""
from __future__ import annotations

from math import gcd

import torch
import torch.nn as nn

from .blocks import CBAM, ConvBNReLU, ConvSpec, SqueezeExcite

BRANCHES = ("binary", "dilated", "grouped")
VARIANTS = ("full", "ms_se", "ms_cbam")


def _split(total: int, parts: int) -> list[int]:
    base = total // parts
    return [base + (1 if i < total - base * parts else 0) for i in range(parts)]


def _branches(kind: str, channels: int, spec: ConvSpec, branches: tuple[str, ...], groups: int) -> list[nn.Module]:
    """One module per output slice of the concatenation."""
    if kind == "multiscale":   # 1x1 and 3x3 at dilations 1, 2, 4: a plain multi-scale block
        widths = _split(channels, 4)
        return [ConvBNReLU(spec, channels, w, k, dilation=d) for w, (k, d) in zip(widths, [(1, 1), (3, 1), (3, 2),
                                                                                           (3, 4)])]
    if not branches or set(branches) - set(BRANCHES):
        raise ValueError(f"capacity branches must be a non-empty subset of {BRANCHES}, got {branches}")
    slots = (["pair", "single"] if "binary" in branches else []) + [b for b in ("dilated", "grouped") if b in branches]
    widths = dict(zip(slots, _split(channels, len(slots))))
    made = []
    for slot, width in widths.items():
        if slot == "pair":      # B1 = B(B(F)), eq. 3
            made.append(nn.Sequential(ConvBNReLU(spec, channels, width), ConvBNReLU(spec, width, width)))
        elif slot == "single":  # B2 = B(F)
            made.append(ConvBNReLU(spec, channels, width))
        elif slot == "dilated":  # 7x7, d = 2, eq. 4-5
            made.append(ConvBNReLU(spec, channels, width, kernel=7, dilation=2))
        else:                   # 3x3 grouped, eq. 6
            made.append(ConvBNReLU(spec, channels, width, groups=gcd(gcd(channels, width), groups)))
    return made


class CapacityBlock(nn.Module):
    """`variant` "full" is the paper's block; "ms_se" and "ms_cbam" are the Table 7 baselines."""

    def __init__(self, channels: int, spec: ConvSpec, variant: str = "full",
                 branches: tuple[str, ...] = BRANCHES, attention: bool = True, groups: int = 4,
                 reduction: int = 8):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"capacity variant must be one of {VARIANTS}, got {variant!r}")
        kind = "capacity" if variant == "full" else "multiscale"
        self.branches = nn.ModuleList(_branches(kind, channels, spec, tuple(branches), groups))
        if not attention:
            self.attention = nn.Identity()
        elif variant == "ms_cbam":
            self.attention = CBAM(channels, reduction)
        else:
            self.attention = SqueezeExcite(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(torch.cat([branch(x) for branch in self.branches], dim=1))
