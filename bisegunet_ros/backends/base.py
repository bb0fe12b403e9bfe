"""The one interface every inference backend offers the pipeline (model format 2, see model_info.py)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..model_info import ModelInfo


@dataclass
class InferenceOutputs:
    """What the graph computed for exactly the N frames of one call (argmax and confidence ran on the engine).

    The caller owns these arrays: no later call of the backend writes into them."""

    labels: np.ndarray                 # uint8 (N, H, W), class ids
    confidence: np.ndarray | None      # uint8 (N, H, W), max softmax probability x 255; None when not asked for
    logits: np.ndarray | None = None   # float32 (N, C, H, W), only for models exported with --logits


class Backend(ABC):
    """Runs an exported BiSegUNet: uint8 pixels (N, H, W, 3) in, uint8 labels and confidence out.

    `info` is the model's contract (classes, input size, channel order); `max_batch` is 1 for a
    model exported without a dynamic batch dimension, so callers with several cameras know whether
    frames can share one call.
    """

    name: str          # e.g. "onnxruntime-cpu", "tensorrt"
    precision: str     # "fp32", "fp16", "int8"
    info: ModelInfo
    max_batch: int

    @abstractmethod
    def infer(self, pixels: np.ndarray, confidence: bool = True) -> InferenceOutputs:
        """Labels (and, with `confidence`, the confidence) for uint8 pixels (N, H, W, 3) at the network's
        input size, 1 <= N <= max_batch. Without `confidence` a backend may skip computing it
        (ONNX Runtime runs a graph without that branch) and the result's confidence is None."""

    def close(self) -> None:
        """Release what the backend holds outside Python's memory (device buffers, a CUDA context);
        nothing to do for a backend without any. Call once, when no infer() runs any more."""

    def check_batch(self, pixels: np.ndarray) -> None:
        """Raise ValueError naming the expected shape and dtype when `pixels` does not fit."""
        expected = (self.info.input_height, self.info.input_width, 3)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"{self.name}: input must be uint8 (N, {', '.join(map(str, expected))}) "
                             f"{self.info.channel_order.upper()} pixels, got {pixels.dtype} {pixels.shape}")
        if not 1 <= pixels.shape[0] <= self.max_batch:
            raise ValueError(f"{self.name}: batch of {pixels.shape[0]} frames; this model takes 1 to {self.max_batch}")
