"""The one definition of input normalisation: uint8 pixels -> the network's float input.

normalised = (pixel / 255 - mean) / std per channel, written as pixel * scale + offset. Training
(data/transforms.py) calls `normalise`; the exported graph (uint8_graph.py) holds the same
`scale_offset` as constants, so the vehicle computes what training computed. mean/std come from
the checkpoint (`state["data"]`), in the channel order of the pixels (RGB).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def scale_offset(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 per-channel (scale, offset) with normalised = pixel * scale + offset for 0-255 pixels."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if mean.shape != (3,) or std.shape != (3,) or (std <= 0).any():
        raise ValueError(f"mean and std must be 3 values each, std > 0; got mean {mean.tolist()}, std {std.tolist()}")
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Pixels on the 0-255 scale (..., 3), uint8 or float -> float32 normalised values, channels last."""
    scale, offset = scale_offset(mean, std)
    return pixels.astype(np.float32) * scale + offset
