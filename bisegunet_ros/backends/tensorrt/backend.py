"""TensorRT 10 backend (the vehicle's path): named tensors, pycuda, one stream, every result checked.

Close to NVIDIA's TensorRT 10 Python samples: page-locked host buffers and device buffers are
allocated once for the profile's largest batch, and each call copies only the N frames it has,
asynchronously on one CUDA stream around `execute_async_v3`. Tensors are found by name (the
export contract: `pixels` in, `labels` and `confidence` out, `logits` when exported with it).
All CUDA work runs with the device's primary context pushed on the calling thread
(cuda_context.py), so the node's worker thread can run it. TensorRT reports failures by return
values (None, False); each one is turned into TensorRTError, so a failed call never hands back
the previous call's buffer contents.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...model_info import ModelError, ModelInfo
from ..base import Backend, InferenceOutputs
from .availability import import_tensorrt
from .cuda_context import CudaContext
from .engine_build import TensorRTError, ensure_engine
from .engine_cache import prepare_cache_dir

log = logging.getLogger(__name__)

INPUT = "pixels"
OUTPUTS = ("labels", "confidence")
OPTIONAL_OUTPUTS = ("logits",)


class TensorRTBackend(Backend):
    """Runs the engine for `model_path` (built into `engine_cache_dir` when none matches).

    The engine's batch profile is tuned for `cameras` frames per call and takes 1 to `max_batch`
    (0 = `cameras`); `tf32` allows TF32 tactics for FP32 layers (TensorRT's default).
    """

    def __init__(self, model_path: str | os.PathLike, precision: str = "fp16", cameras: int = 1,
                 max_batch: int = 0, tf32: bool = True, engine_cache_dir: str | os.PathLike | None = None):
        trt = import_tensorrt()
        onnx = Path(model_path)
        if not onnx.is_file():
            raise ModelError(f"{onnx}: model file not found; give model_path the .onnx written by bisegunet-export")
        self.info = ModelInfo.from_onnx(onnx)
        self.name, self.precision = "tensorrt", precision
        cache_dir = prepare_cache_dir(engine_cache_dir)
        self.cuda = CudaContext(0)
        try:
            with self.cuda.current("loading the TensorRT engine") as cuda:
                self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
                build = (self.cuda, onnx, precision, cameras, max_batch, tf32, cache_dir)
                engine_file = ensure_engine(*build)
                self.engine = self._runtime.deserialize_cuda_engine(engine_file.read_bytes())
                if self.engine is None:  # a damaged file its sidecar did not catch: rebuild once, never loop
                    log.warning("%s: TensorRT could not deserialize it; rebuilding it from %s", engine_file, onnx)
                    engine_file = ensure_engine(*build, rebuild=True)
                    self.engine = self._runtime.deserialize_cuda_engine(engine_file.read_bytes())
                if self.engine is None:
                    raise TensorRTError(f"{engine_file}: TensorRT could not deserialize the engine it just built "
                                        f"from {onnx} (see its log above)")
                self._load(trt, cuda, engine_file, onnx)
        except BaseException:
            self.close()
            raise
        log.info("tensorrt engine %s (%s, batch 1 to %d, outputs %s)", engine_file, precision, self.max_batch,
                 ", ".join(self.outputs))

    def _load(self, trt, cuda, engine_file: Path, onnx: Path) -> None:
        """Check the engine's tensors against the contract, allocate buffers for the largest batch."""
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TensorRTError(f"{engine_file}: TensorRT could not create an execution context (GPU memory?)")
        tensors = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        names = {name: self.engine.get_tensor_mode(name) for name in tensors}
        missing = [n for n in (INPUT, *OUTPUTS) if n not in names]
        if missing:
            raise ModelError(f"{onnx}: the engine lacks tensor(s) {', '.join(missing)} (it has {', '.join(names)}); "
                             "re-export the model with this version of bisegunet-export")
        self.outputs = [n for n in (*OUTPUTS, *OPTIONAL_OUTPUTS) if names.get(n) == trt.TensorIOMode.OUTPUT]
        batch = self.engine.get_tensor_shape(INPUT)[0]
        # a dynamic batch (-1) is bounded by the optimization profile the engine was built with
        self.max_batch = batch if batch > 0 else self.engine.get_tensor_profile_shape(INPUT, 0)[2][0]
        self.host, self.device = {}, {}
        for name in (INPUT, *self.outputs):
            shape = (self.max_batch, *self.engine.get_tensor_shape(name)[1:])
            if -1 in shape:
                raise ModelError(f"{onnx}: tensor {name} has a dynamic dimension besides the batch: {shape}")
            self.host[name] = cuda.pagelocked_empty(shape, trt.nptype(self.engine.get_tensor_dtype(name)))
            self.device[name] = cuda.mem_alloc(self.host[name].nbytes)
            if not self.context.set_tensor_address(name, int(self.device[name])):
                raise TensorRTError(f"set_tensor_address({name!r}) was refused by TensorRT")
        if self.host[INPUT].dtype != np.uint8:
            raise ModelError(f"{onnx}: input {INPUT} is {self.host[INPUT].dtype}, the contract is uint8 NHWC; "
                             "re-export the model")
        self.stream = cuda.Stream()

    def infer(self, pixels: np.ndarray, confidence: bool = True) -> InferenceOutputs:
        """Outputs for the N frames of `pixels` (uint8, N x H x W x 3); copies only those N frames.

        One engine computes labels and confidence (a second, labels-only engine would double the
        build time and the GPU memory); without `confidence` its buffer is not copied back."""
        self.check_batch(pixels)
        n = pixels.shape[0]
        with self.cuda.current("TensorRT inference") as cuda:
            if not self.context.set_input_shape(INPUT, pixels.shape):
                raise TensorRTError(f"set_input_shape({INPUT!r}, {pixels.shape}) was refused by TensorRT "
                                    f"(engine batch 1 to {self.max_batch})")
            host_in = self.host[INPUT][:n]
            host_in[...] = pixels
            cuda.memcpy_htod_async(self.device[INPUT], host_in, self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                self.stream.synchronize()  # let the queued copy finish before the buffers are reused
                raise TensorRTError(f"execute_async_v3 failed for a batch of {n} (see TensorRT's log); "
                                    "no outputs for these frames")
            fetched = [name for name in self.outputs if confidence or name != "confidence"]
            for name in fetched:
                cuda.memcpy_dtoh_async(self.host[name][:n], self.device[name], self.stream)
            self.stream.synchronize()
            copies = {name: self.host[name][:n].copy() for name in fetched}
        return InferenceOutputs(labels=copies["labels"], confidence=copies.get("confidence"),
                                logits=copies.get("logits"))

    def close(self) -> None:
        """Free the stream, the page-locked host buffers and the device buffers, then release the CUDA context
        (the backend is unusable afterwards). Each is freed now, in its context, as pycuda documents
        (`HostAllocation.free()`, `DeviceAllocation.free()`; a Stream is destroyed when its last reference
        goes): left to the garbage collector after the context is released, they would leak."""
        cuda_context = getattr(self, "cuda", None)
        if cuda_context is None:
            return
        if not (getattr(self, "host", None) or getattr(self, "device", None) or getattr(self, "stream", None)):
            cuda_context.close()  # nothing allocated (a failed start), or closed before
            return
        with cuda_context.current("freeing TensorRT buffers"):
            if getattr(self, "stream", None) is not None:
                self.stream.synchronize()  # no queued copy may touch a buffer freed below
            self.stream = None  # its last reference: destroyed now, in its context
            for array in getattr(self, "host", {}).values():
                array.base.free()  # the HostAllocation behind pagelocked_empty's array
            for allocation in getattr(self, "device", {}).values():
                allocation.free()
            self.host, self.device = {}, {}
            self.context = self.engine = self._runtime = None
        cuda_context.close()
