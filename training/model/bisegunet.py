"""BiSegUNet (section III, Table 1, Fig. 2): stem, encoder, Capacity Blocks, ASPP + attention
bottleneck, decoder with skip connections, 1x1 classifier. Choices where the paper is vague or
inconsistent are listed in docs/model.md; every one is a field of ModelConfig."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from .binary import BinaryConv2d
from .blocks import ConvBNReLU, ConvSpec
from .bottleneck import ASPP, PositionAttention
from .capacity import BRANCHES, CapacityBlock

PARTS = ("stem", "encoder", "capacity", "bottleneck", "decoder", "head")
STRIDE = 16                       # of the deepest encoder stage, relative to the stem's output
ENTRY_STRIDES = (1, 2, 4)
OUTPUT_STRIDES = (1, 2, 4, 8)


@dataclass
class ModelConfig:
    """Defaults are the `small` preset (config/model/small.yaml). `name` labels the model (export
    calls it bisegunet_<name>); presets are found by their file name, never by this field."""

    RANGES: ClassVar[dict] = {"num_classes": (1, 256), "width_multiplier": (0.01, None), "stem_channels": (1, None),
                              "bottleneck_channels": (1, None), "attention_kv_pool": (1, None),
                              "capacity_groups": (1, None), "bn_momentum": (0, 1)}   # checked by training/config.py

    name: str = "small"
    num_classes: int = 19
    width_multiplier: float = 1.0
    stem_kernels: list[int] = field(default_factory=lambda: [3, 5, 7])    # M parallel streams (eq. 1)
    stem_channels: int = 32                                          # their concatenated width
    encoder_channels: list[int] = field(default_factory=lambda: [48, 96, 176, 256])
    bottleneck_channels: int = 176
    aspp_rates: list[int] = field(default_factory=lambda: [1, 6, 12, 18])
    attention: bool = True                                           # the ANP self-attention
    attention_kv_pool: int = 1
    decoder_channels: list[int] = field(default_factory=lambda: [176, 96, 48, 32, 24])  # strides 16, 8, 4, 2, 1
    entry_stride: int = 1                    # learned downsampling (strided 3x3 convs) before the stem: 1, 2, 4
    output_stride: int = 1                   # where the decoder stops (1, 2, 4, 8); logits upsampled bilinearly
    capacity_blocks: int = 4                 # on the encoder outputs, counted from the deepest (0-4)
    capacity_variant: str = "full"           # full | ms_se | ms_cbam (Table 7)
    capacity_branches: list[str] = field(default_factory=lambda: list(BRANCHES))
    channel_attention: bool = True           # SE inside the Capacity Blocks
    capacity_groups: int = 4
    decoder_capacity_block: bool = True
    binary_parts: list[str] = field(default_factory=lambda: ["encoder", "capacity", "bottleneck", "decoder"])
    estimator: str = "approx_sign"           # ste | approx_sign
    weight_standardization: bool = False     # IR-Net, beyond the paper
    bn_momentum: float = 0.1

    def width(self, channels: int) -> int:
        return max(8, int(round(channels * self.width_multiplier / 8)) * 8)

    def __post_init__(self) -> None:
        unknown = set(self.binary_parts) - set(PARTS)
        if unknown:
            raise ValueError(f"binary_parts: unknown {sorted(unknown)}; choose from {PARTS}")
        if not 0 <= self.capacity_blocks <= 4:
            raise ValueError(f"capacity_blocks must be 0-4, got {self.capacity_blocks}")
        if len(self.encoder_channels) != 4 or len(self.decoder_channels) != 5:
            raise ValueError("encoder_channels needs 4 widths and decoder_channels 5 (strides 16, 8, 4, 2, 1)")
        if self.entry_stride not in ENTRY_STRIDES:
            raise ValueError(f"entry_stride must be one of {ENTRY_STRIDES}, got {self.entry_stride!r}")
        if self.output_stride not in OUTPUT_STRIDES or self.output_stride < self.entry_stride:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES} and at least entry_stride "
                             f"({self.entry_stride}), got {self.output_stride!r}")

    @property
    def network_stride(self) -> int:
        """Input sizes are padded to a multiple of this: the deepest encoder stage's stride."""
        return STRIDE * self.entry_stride

    @property
    def decoder_levels(self) -> int:
        """Upsample-and-fuse levels after the first (eq. 16): 4 reach the stem, fewer stop at output_stride."""
        return (self.network_stride // self.output_stride).bit_length() - 1


class MultiStreamStem(nn.Module):
    """Eq. 1: parallel convolutions with different kernels, concatenated."""

    def __init__(self, kernels: list[int], channels: int, spec: ConvSpec, in_channels: int = 3):
        super().__init__()
        widths = [channels // len(kernels) + (1 if i < channels % len(kernels) else 0) for i in range(len(kernels))]
        self.streams = nn.ModuleList(ConvBNReLU(spec, in_channels, w, k) for w, k in zip(widths, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([s(x) for s in self.streams], dim=1)


def learned_downsampling(stride: int, channels: int, spec: ConvSpec) -> nn.Module:
    """Fast-SCNN's learning-to-downsample, as plain strided 3x3 conv + BN + ReLU layers: log2(stride)
    of them, each halving the resolution, so that the stem and everything after run `stride` times
    smaller on each side. The identity at stride 1 (the paper's network)."""
    layers = [ConvBNReLU(spec, 3 if i == 0 else channels, channels, stride=2)
              for i in range(stride.bit_length() - 1)]
    return nn.Sequential(*layers) if layers else nn.Identity()


class BiSegUNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

        def spec(part: str) -> ConvSpec:
            return ConvSpec(part in cfg.binary_parts, cfg.estimator, cfg.weight_standardization, cfg.bn_momentum)

        stem = cfg.width(cfg.stem_channels)
        enc = [cfg.width(c) for c in cfg.encoder_channels]
        dec = [cfg.width(c) for c in cfg.decoder_channels]
        mid = cfg.width(cfg.bottleneck_channels)
        self.entry = learned_downsampling(cfg.entry_stride, stem, spec("stem"))
        self.stem = MultiStreamStem(cfg.stem_kernels, stem, spec("stem"), 3 if cfg.entry_stride == 1 else stem)
        self.encoder = nn.ModuleList(ConvBNReLU(spec("encoder"), cin, cout, stride=2)
                                     for cin, cout in zip([stem, *enc[:3]], enc))
        capacity = dict(variant=cfg.capacity_variant, branches=tuple(cfg.capacity_branches),
                        attention=cfg.channel_attention, groups=cfg.capacity_groups)
        self.capacity = nn.ModuleList(  # index i refines encoder stage i; the deepest get blocks first
            CapacityBlock(c, spec("capacity"), **capacity) if i >= 4 - cfg.capacity_blocks else nn.Identity()
            for i, c in enumerate(enc))
        self.aspp = ASPP(enc[3], mid, tuple(cfg.aspp_rates), spec("bottleneck"))
        self.attention = (PositionAttention(mid, spec("bottleneck"), kv_pool=cfg.attention_kv_pool)
                          if cfg.attention else nn.Identity())
        # eq. 15: the first level fuses the bottleneck with the top Capacity Block output
        self.fuse_top = ConvBNReLU(spec("decoder"), mid + enc[3], dec[0])
        # eq. 16: each further level upsamples and fuses a skip (encoder stages 3, 2, 1, then the stem),
        # down to output_stride
        skips = [enc[2], enc[1], enc[0], stem][:cfg.decoder_levels]
        self.fuse = nn.ModuleList(ConvBNReLU(spec("decoder"), dec[i] + s, dec[i + 1]) for i, s in enumerate(skips))
        out = dec[cfg.decoder_levels]
        self.refine = (CapacityBlock(out, spec("capacity"), **capacity) if cfg.decoder_capacity_block
                       else nn.Identity())
        self.head = spec("head").conv(out, cfg.num_classes, 1, bias=True)  # eq. 17
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation (section IV) for every convolution; BatchNorm at identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ints, not traced sizes: an exported graph (fixed height and width) pads by constants instead of
        # computing them with Mod, which TensorRT's parser lacks
        h, w = (int(n) for n in x.shape[-2:])
        stride = self.cfg.network_stride
        pad_h, pad_w = (-h) % stride, (-w) % stride
        if pad_h or pad_w:  # any size works: pad to the network stride, crop the logits back
            x = F.pad(x, (0, pad_w, 0, pad_h))
        stem = self.stem(self.entry(x))
        features, y = [], stem
        for stage in self.encoder:
            y = stage(y)
            features.append(y)
        refined = [block(f) for block, f in zip(self.capacity, features)]
        y = self.attention(self.aspp(refined[3]))
        y = self.fuse_top(torch.cat([y, refined[3]], dim=1))
        for fuse, skip in zip(self.fuse, [refined[2], refined[1], refined[0], stem]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = fuse(torch.cat([y, skip], dim=1))
        logits = self.head(self.refine(y))
        if self.cfg.output_stride > 1:   # full-size logits from the graph, whatever stride the decoder stops at
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # crop only what was padded: exported, even a no-op crop is two Slices that copy every full-size
        # logit (ONNX Runtime's profiler lists them among the costliest nodes of `fast`)
        return logits[..., :h, :w] if pad_h or pad_w else logits


def binary_layers(model: nn.Module) -> list[tuple[str, BinaryConv2d]]:
    """Every BinaryConv2d with its name, shallowest first (the order the forward pass meets them)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BinaryConv2d)]


def set_binarized(model: nn.Module, on: bool = True) -> None:
    for _, layer in binary_layers(model):
        layer.binarized = on
