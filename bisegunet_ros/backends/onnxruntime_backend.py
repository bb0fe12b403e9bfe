"""ONNX Runtime backend: the CPU (and CUDA, when present) path, and the fallback where TensorRT is absent."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..model_info import ModelError, ModelInfo, cpu_int8_path
from ..onnx_wire import without_output
from .base import Backend, InferenceOutputs

log = logging.getLogger(__name__)


# The CPU INT8 model leaves a few convolutions float on purpose, where ONNX Runtime's integer kernel is
# the slower one (training/quantize.py, `float_convolutions`); its WeightBiasQuantization pass would
# quantize their weights again, per tensor, because a DequantizeLinear feeds them. Off for that model
# only: on the TensorRT INT8 model it forms the few QLinearConv that model gets on a CPU. Releases
# without the pass ignore the name.
CPU_INT8_DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)


def inference_session(model: bytes | str, options: ort.SessionOptions, int8_target: str | None = None,
                      providers: list[str] | None = None) -> ort.InferenceSession:
    """A session as this backend makes it: `options` (session_options, perhaps with profiling or a file
    for the optimised graph added), all graph optimisations, less CPU_INT8_DISABLED_OPTIMIZERS where
    `int8_target` (the model's ModelInfo.int8_target) is "cpu"."""
    disabled = CPU_INT8_DISABLED_OPTIMIZERS if int8_target == "cpu" else ()
    return ort.InferenceSession(model, options, providers=providers or ["CPUExecutionProvider"],
                                disabled_optimizers=list(disabled))


def session_options(threads: int) -> ort.SessionOptions:
    """Options for latency: all graph optimisations, one inference at a time, no idle spinning."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_model(path: Path) -> Path:
    """The file ONNX Runtime runs on the CPU for `path`: a TensorRT INT8 model (symmetric activations,
    which ONNX Runtime mostly runs as float convolutions between Q/DQ pairs) is swapped for the CPU
    INT8 model beside it (cpu_int8_path) when there is one."""
    if ModelInfo.from_onnx(path).int8_target != "tensorrt":
        return path
    sibling = cpu_int8_path(path)
    if sibling.is_file():
        log.info("%s is the TensorRT INT8 model; running its CPU INT8 model %s", path, sibling)
        return sibling
    log.warning("%s is the TensorRT INT8 model and no CPU INT8 model %s lies beside it; ONNX Runtime runs most "
                "of its convolutions in float (write it with `bisegunet-quantize --target cpu`)", path, sibling)
    return path


class OnnxRuntimeBackend(Backend):
    """One InferenceSession per model and one for its labels-only graph; `device` is "cpu" or "cuda"
    (CUDA provider when installed).

    ONNX Runtime computes every node of a graph whatever outputs are fetched, so the confidence
    branch would cost its time on every frame; calls without `confidence` run a second session on
    the same model less that branch (onnx_wire.without_output), built at load so no frame waits."""

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu", threads: int = 0):
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; give model_path the .onnx written by bisegunet-export")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ModelError(f"{path}: device 'cuda' asked for, but this onnxruntime has no CUDA provider "
                                 f"(available: {ort.get_available_providers()}); install onnxruntime-gpu or use cpu")
            providers.insert(0, "CUDAExecutionProvider")
        elif device != "cpu":
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        else:
            path = cpu_model(path)
        self.model_path, self.info = path, ModelInfo.from_onnx(path)
        model = path.read_bytes()
        try:
            labels_only = without_output(model, "confidence")
            target = self.info.int8_target
            self.session = inference_session(model, session_options(threads), target, providers)
            self.labels_session = (self.session if labels_only is None else
                                   inference_session(labels_only, session_options(threads), target, providers))
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelError(f"{path}: not a loadable ONNX model ({exc}); re-export it with bisegunet-export") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        missing = {"labels", "confidence"} - set(self.output_names)
        if missing:
            raise ModelError(f"{path}: the graph lacks the outputs {sorted(missing)}; re-export it with bisegunet-export")
        self._bindings = {True: self.session.io_binding(), False: self.labels_session.io_binding()}
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else 64
        self.name = f"onnxruntime-{device}"
        self.precision = str(self.info.extra.get("precision", "fp32"))  # the quantizer records int8
        log.info("loaded %s with %s (%s, max batch %d)", path, self.name, self.precision, self.max_batch)

    def infer(self, pixels: np.ndarray, confidence: bool = True) -> InferenceOutputs:
        """Runs with I/O binding: the uint8 input is read in place and the outputs are written straight
        into arrays made for this call (no copy afterwards), which the caller then owns."""
        self.check_batch(pixels)
        size = (pixels.shape[0], self.info.input_height, self.info.input_width)
        logits = (np.empty((size[0], len(self.info.classes), *size[1:]), np.float32)
                  if "logits" in self.output_names else None)
        out = InferenceOutputs(np.empty(size, np.uint8), np.empty(size, np.uint8) if confidence else None, logits)
        binding = self._bindings[confidence]
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(pixels))
        for name in self.output_names:
            array = getattr(out, name)
            if array is not None:
                binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        (self.session if confidence else self.labels_session).run_with_iobinding(binding)
        return out
