"""torchvision's lightweight segmentation networks as plain logits models, for like-for-like comparisons.

A model string `torchvision:<architecture>` (for example `torchvision:lraspp_mobilenet_v3_large`)
names one; the trainer, the exporter and the profiler build it through the same factory as
BiSegUNet. Weights are random: nothing is downloaded (this machine cannot reach the weight
store), so these models are trained from scratch like ours.
"""
from __future__ import annotations

import importlib
import logging
import sys
import types
from dataclasses import dataclass

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

PREFIX = "torchvision:"
ARCHITECTURES = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")


def import_torchvision() -> types.ModuleType:
    """`import torchvision`, also where its C++ operator library cannot load.

    The torchvision wheel for a torch release is built against CUDA torch; beside the CPU build its
    C++ ops (nms, roi_align, ...) are missing and `import torchvision` fails in
    `torchvision._meta_registrations`, which only registers meta kernels for those detection ops
    (RuntimeError: operator torchvision::nms does not exist). Segmentation models never call them,
    so when the normal import fails that way the module is replaced by an empty one and the import
    retried.
    """
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        log.info("torchvision's C++ ops do not load beside this torch (%s); importing without its detection "
                 "meta kernels", exc)
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]          # the half-imported package
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    return importlib.import_module("torchvision")


@dataclass
class TorchvisionConfig:
    """A torchvision segmentation architecture; `name` is the model string (torchvision:<architecture>)."""

    name: str
    num_classes: int = 19

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"{self.name}: unknown torchvision model; choose from "
                             f"{', '.join(PREFIX + a for a in ARCHITECTURES)}")

    @property
    def architecture(self) -> str:
        return self.name.removeprefix(PREFIX)


class LogitsOnly(nn.Module):
    """torchvision's segmentation models return {"out": logits}; training, export and profiling want the tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def build_torchvision_model(cfg: TorchvisionConfig) -> nn.Module:
    """Random weights, no auxiliary head: the architecture only."""
    segmentation = import_torchvision().models.segmentation
    builder = getattr(segmentation, cfg.architecture)
    return LogitsOnly(builder(weights=None, weights_backbone=None, num_classes=cfg.num_classes))
