"""The models bench/pareto.py compares (and bench/gpu_latency.py times on a GPU): one list, no heavy imports."""
from __future__ import annotations

from dataclasses import dataclass

LRASPP = "lraspp"


@dataclass(frozen=True)
class Entry:
    key: str          # run name prefix
    label: str        # row of the table, point of the plot
    model: str        # TrainConfig.model: a preset or torchvision:<architecture>
    binarize: bool


ENTRIES = (
    Entry(LRASPP, "LR-ASPP MobileNetV3-Large", "torchvision:lraspp_mobilenet_v3_large", False),
    Entry("deeplabv3", "DeepLabV3 MobileNetV3-Large", "torchvision:deeplabv3_mobilenet_v3_large", False),
    Entry("fast_float", "BiSegUNet fast, float", "fast", False),
    Entry("fast_binary", "BiSegUNet fast, binarized", "fast", True),
    Entry("tiny_float", "BiSegUNet tiny, float", "tiny", False),
    Entry("tiny_binary", "BiSegUNet tiny, binarized", "tiny", True),
    Entry("small_float", "BiSegUNet small, float", "small", False),
    Entry("small_binary", "BiSegUNet small, binarized", "small", True),
)
