"""BiSegUNet as plain PyTorch modules, built from a ModelConfig by one factory (which also builds
torchvision's segmentation networks, for comparisons: torchvision_models.py)."""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from bisegunet_ros.resources import find_resource

from ..config import load_config
from .binary import ESTIMATORS, BinaryConv2d
from .bisegunet import BiSegUNet, ModelConfig, binary_layers, set_binarized
from .torchvision_models import PREFIX as TORCHVISION_PREFIX
from .torchvision_models import TorchvisionConfig, build_torchvision_model


def load_model_config(preset_or_path: str | Path, overrides: list[str] = ()) -> ModelConfig | TorchvisionConfig:
    """A preset name (tiny, small, paper, fast), a YAML path, with key=value overrides, or torchvision:<architecture>.

    Presets are found wherever the package is installed (bisegunet_ros.resources)."""
    if str(preset_or_path).startswith(TORCHVISION_PREFIX):
        return load_config(None, TorchvisionConfig, [f"name={preset_or_path}", *overrides])
    return load_config(find_resource("preset", preset_or_path), ModelConfig, overrides)


def model_config_from_dict(values: dict) -> ModelConfig | TorchvisionConfig:
    """The config a checkpoint recorded (asdict of either kind), rebuilt."""
    if str(values.get("name", "")).startswith(TORCHVISION_PREFIX):
        return TorchvisionConfig(**values)
    return ModelConfig(**values)


def build_model(cfg: ModelConfig | TorchvisionConfig) -> nn.Module:
    """The one factory that training, export and the profiler use."""
    return build_torchvision_model(cfg) if isinstance(cfg, TorchvisionConfig) else BiSegUNet(cfg)


__all__ = ["BiSegUNet", "BinaryConv2d", "ESTIMATORS", "ModelConfig", "TORCHVISION_PREFIX", "TorchvisionConfig",
           "binary_layers",
           "build_model", "load_model_config", "model_config_from_dict", "set_binarized"]
