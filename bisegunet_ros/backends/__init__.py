"""Inference backends behind one interface, chosen by name ("auto", "onnxruntime", "tensorrt")."""
from __future__ import annotations

import logging
import os

from ..model_info import ModelError
from ..resources import ResourceError, find_resource
from .base import Backend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "onnxruntime-cuda", "tensorrt")


def load_backend(model_path: str | os.PathLike, backend: str = "auto", precision: str = "fp16",
                 threads: int = 0, engine_cache_dir: str | os.PathLike | None = None, cameras: int = 1,
                 max_batch: int = 0, tf32: bool = True) -> Backend:
    """Load `model_path` (the .onnx with metadata, or a shipped model's name) on the named backend.

    "auto" takes TensorRT when it is importable and a GPU is present, otherwise ONNX Runtime;
    the choice is logged. `precision`, `engine_cache_dir` (None: $ROS_HOME/bisegunet_engines), the batch
    profile (tuned for `cameras` frames, 1 to `max_batch`, 0 = `cameras`) and `tf32` apply to TensorRT
    engines only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    try:
        model_path = find_resource("model", model_path)
    except ResourceError as exc:
        raise ModelError(str(exc)) from exc
    if backend in ("auto", "tensorrt"):
        from .tensorrt.availability import unavailable_reason

        reason = unavailable_reason()
        if reason is None:
            from .tensorrt.backend import TensorRTBackend

            log.info("backend: tensorrt (%s)", precision)
            return TensorRTBackend(model_path, precision, cameras, max_batch, tf32, engine_cache_dir)
        if backend == "tensorrt":
            raise RuntimeError(f"backend 'tensorrt' asked for but not usable here: {reason}")
        log.info("backend: onnxruntime (tensorrt not used: %s)", reason)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_path, device="cuda" if backend == "onnxruntime-cuda" else "cpu", threads=threads)
