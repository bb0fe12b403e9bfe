"""TensorRT 10 backend (the vehicle's path): named-tensor API, pycuda, one stream.

Close to NVIDIA's TensorRT 10 Python samples: page-locked host buffers and device buffers are
allocated once for the largest batch, copies are asynchronous on one CUDA stream, and
`execute_async_v3` runs the engine. The engine comes from `engine_cache.resolve_engine`, so a
stale engine is never run. Tested where tensorrt and pycuda are importable (JetPack).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ..engine_cache import EngineKey, resolve_engine, sha256_of
from ..model_info import ModelError, ModelInfo
from .base import Backend

log = logging.getLogger(__name__)


def unavailable_reason() -> str | None:
    """Why TensorRT cannot be used here, or None when it can."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"python module '{module}' is not installed (it comes with JetPack on the vehicle)"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:  # pycuda raises its own errors when no driver is loaded
        return f"CUDA is not usable: {exc}"
    return None


def current_key(onnx: Path, precision: str) -> EngineKey:
    """The key an engine must have to run on this machine with this ONNX."""
    import pycuda.driver as cuda
    import tensorrt as trt

    cuda.init()
    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return EngineKey(trt.__version__, device.name(), f"{major}.{minor}", precision, sha256_of(onnx))


class TensorRTBackend(Backend):
    def __init__(self, model_path: str | os.PathLike, precision: str = "fp16", max_batch: int = 4,
                 calib_images: str | None = None):
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda
        import tensorrt as trt

        from ..engine_build import build_engine

        onnx = Path(model_path)
        if not onnx.is_file():
            raise ModelError(f"{onnx}: model file not found; give model_path the .onnx written by bisegunet-export")
        self.info = ModelInfo.from_onnx(onnx)  # engines carry no metadata
        engine_file = resolve_engine(onnx, current_key(onnx, precision),
                                     lambda src, dst: build_engine(src, dst, precision, calib_images, max_batch))
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise ModelError(f"{engine_file}: TensorRT could not deserialize it; delete it to rebuild from {onnx}")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self.name, self.precision = "tensorrt", precision
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        batch_dim = self.engine.get_tensor_shape(self.input_name)[0]
        self.max_batch = max_batch if batch_dim == -1 else batch_dim
        self.host, self.device = {}, {}
        for name in (self.input_name, self.output_name):
            shape = list(self.engine.get_tensor_shape(name))
            shape[0] = self.max_batch
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
            self.host[name] = cuda.pagelocked_empty(tuple(shape), dtype)
            self.device[name] = cuda.mem_alloc(self.host[name].nbytes)
            self.context.set_tensor_address(name, int(self.device[name]))
        log.info("tensorrt engine %s (%s, max batch %d)", engine_file, precision, self.max_batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import pycuda.driver as cuda

        self.check_batch(batch)
        n = batch.shape[0]
        self.context.set_input_shape(self.input_name, batch.shape)
        host_in, host_out = self.host[self.input_name], self.host[self.output_name]
        host_in[:n] = batch
        cuda.memcpy_htod_async(self.device[self.input_name], host_in, self.stream)
        self.context.execute_async_v3(self.stream.handle)
        cuda.memcpy_dtoh_async(host_out, self.device[self.output_name], self.stream)
        self.stream.synchronize()
        return host_out[:n].astype(np.float32, copy=True)
