"""The one interface every inference backend offers the pipeline."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..model_info import ModelInfo


class Backend(ABC):
    """Runs an exported BiSegUNet: normalised NCHW float32 in, logits NCHW float32 out.

    `info` is the model's contract (classes, input size, mean/std); `max_batch` is 1 for a model
    exported without a dynamic batch dimension, so callers with several cameras know whether
    frames can share one call.
    """

    name: str          # e.g. "onnxruntime-cpu", "tensorrt"
    precision: str     # "fp32", "fp16", "int8"
    info: ModelInfo
    max_batch: int

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes, H, W) for a batch (N, 3, H, W) at the network's input size."""

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ValueError naming the expected shape and dtype when `batch` does not fit."""
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"{self.name}: input must be float32 (N, {', '.join(map(str, expected))}), "
                             f"got {batch.dtype} {batch.shape}")
        if not 1 <= batch.shape[0] <= self.max_batch:
            raise ValueError(f"{self.name}: batch of {batch.shape[0]} frames; this model takes 1 to {self.max_batch}")
