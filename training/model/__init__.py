"""BiSegUNet as plain PyTorch modules, built from a ModelConfig by one factory."""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from .binary import ESTIMATORS, BinaryConv2d
from .bisegunet import BiSegUNet, ModelConfig, binary_layers, set_binarized

PRESETS_DIR = Path(__file__).resolve().parents[2] / "config" / "model"


def load_model_config(preset_or_path: str | Path, overrides: list[str] = ()) -> ModelConfig:
    """A preset name (tiny, small, paper) or a YAML path, with key=value overrides."""
    path = Path(preset_or_path)
    if not path.suffix and not path.exists():
        path = PRESETS_DIR / f"{preset_or_path}.yaml"
    return load_config(path, ModelConfig, overrides)


def build_model(cfg: ModelConfig) -> BiSegUNet:
    """The one factory that training, export and the profiler use."""
    return BiSegUNet(cfg)


__all__ = ["BiSegUNet", "BinaryConv2d", "ESTIMATORS", "ModelConfig", "binary_layers", "build_model",
           "load_model_config", "set_binarized"]
