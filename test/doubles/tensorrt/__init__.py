"""Contract test double of TensorRT 10's Python API (the parts bisegunet_ros uses).

Not the real library: TensorRT cannot be installed here. It follows TensorRT 10's documented
semantics where the code depends on them: the named-tensor API (`num_io_tensors`,
`get_tensor_name/mode/shape/dtype`, `get_tensor_profile_shape`), failures reported by return
value (`deserialize_cuda_engine` -> None, `set_input_shape`/`execute_async_v3` -> False,
`build_serialized_network` -> None, `parse_from_file` -> False with errors, `create_timing_cache`
-> None for bytes that are not a timing cache, `deserialize_cuda_engine` -> None for garbage or a
truncated engine), an optimization profile required for a dynamic input, the ONNX parser's refusal
of asymmetric or uint8 Q/DQ, BuilderFlag.TF32 set by default in a new builder config.
`execute_async_v3` queues the network on the CUDA stream (simulated_gpu): it reads the input
from device memory, runs the ONNX graph the engine was built from with ONNX Runtime, and writes
the outputs to device memory, so tests check real data flow.

Test controls (environment):
- TENSORRT_DOUBLE_VERSION: the reported version (default 10.3.0),
- TENSORRT_DOUBLE_CONTROL: a file; while it holds a line `execute` (or `set_input_shape`), that
  call returns False; `create_timing_cache` makes that call return None,
- TENSORRT_DOUBLE_LOG: a file to which each execution appends `execute <thread name>`.
"""
from __future__ import annotations

import enum
import json
import os
import threading
from pathlib import Path

import numpy as np
import simulated_gpu as gpu

__version__ = os.environ.get("TENSORRT_DOUBLE_VERSION", "10.3.0")
_MAGIC = b"TRTDOUBLE\n"
_TIMING_MAGIC = b"TRTTIMING\n"


def _control(call: str) -> bool:
    """True when the control file asks `call` to fail."""
    path = os.environ.get("TENSORRT_DOUBLE_CONTROL")
    try:
        return bool(path) and call in Path(path).read_text().split()
    except OSError:
        return False


def _log(event: str) -> None:
    path = os.environ.get("TENSORRT_DOUBLE_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{event} {threading.current_thread().name}\n")


class Logger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

    def __init__(self, min_severity: "Logger.Severity" = Severity.WARNING):
        self.min_severity = min_severity

    def log(self, severity: "Logger.Severity", msg: str) -> None:
        if severity <= self.min_severity:
            print(f"[TRT] [{severity.name[0]}] {msg}", flush=True)


class DataType(enum.Enum):
    FLOAT = np.float32
    HALF = np.float16
    INT8 = np.int8
    INT32 = np.int32
    INT64 = np.int64
    BOOL = np.bool_
    UINT8 = np.uint8


_ONNX_TYPES = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 7: DataType.INT64,
               9: DataType.BOOL, 2: DataType.UINT8}


def nptype(dtype: DataType):
    return dtype.value


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    TF32 = 2


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class ITensor:
    def __init__(self, name: str, shape: tuple, dtype: DataType):
        self.name, self.shape, self.dtype = name, shape, dtype


class INetworkDefinition:
    def __init__(self):
        self.inputs: list[ITensor] = []
        self.outputs: list[ITensor] = []
        self.onnx = b""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> ITensor:
        return self.inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self.outputs[index]


class _ParserError:
    def __init__(self, text: str):
        self.text = text

    def desc(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger):
        self.network, self.logger = network, logger
        self.errors: list[_ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> _ParserError:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            self.errors.append(_ParserError(f"cannot read {path}: {exc}"))
            return False
        return self.parse(data)

    def parse(self, model: bytes) -> bool:
        import onnx
        from onnx import numpy_helper

        try:
            proto = onnx.load_from_string(model)
        except Exception as exc:
            self.errors.append(_ParserError(f"ModelImporter: failed to parse ONNX model: {exc}"))
            return False
        constants = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
                zero_point = constants.get(node.input[2])
                if zero_point is not None and (zero_point.dtype == np.uint8 or np.any(zero_point != 0)):
                    self.errors.append(_ParserError(
                        f"{node.op_type} {node.name}: TensorRT supports only symmetric int8 quantization "
                        f"(zero point 0, type int8); got {zero_point.dtype} zero point"))
        if self.errors:
            return False

        def tensors(values) -> list[ITensor]:
            return [ITensor(v.name, tuple(d.dim_value if d.HasField("dim_value") else -1
                                          for d in v.type.tensor_type.shape.dim),
                            _ONNX_TYPES[v.type.tensor_type.elem_type]) for v in values]

        self.network.inputs = tensors(i for i in proto.graph.input if i.name not in constants)
        self.network.outputs = tensors(proto.graph.output)
        self.network.onnx = model
        return True


class IOptimizationProfile:
    def __init__(self):
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, min, opt, max) -> None:  # noqa: A002 (TensorRT's argument names)
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class ITimingCache:
    def __init__(self, entries: list[str]):
        self.entries = entries

    def serialize(self) -> bytes:
        return _TIMING_MAGIC + json.dumps(self.entries).encode()


class IBuilderConfig:
    def __init__(self):
        self.flags: set[BuilderFlag] = {BuilderFlag.TF32}   # TensorRT's default
        self.profiles: list[IOptimizationProfile] = []
        self.timing_cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        pass

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> ITimingCache | None:
        """An empty cache for b"", the serialized one otherwise; None (with an error) for other bytes."""
        if _control("create_timing_cache"):
            return None
        if not data:
            return ITimingCache([])
        try:
            if not data.startswith(_TIMING_MAGIC):
                raise ValueError("no timing cache header")
            return ITimingCache(list(json.loads(data[len(_TIMING_MAGIC):])))
        except (ValueError, TypeError):
            print("[TRT] [E] ITimingCache: the serialized timing cache is corrupt", flush=True)
            return None

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing_cache


class Builder:
    def __init__(self, logger: Logger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        profiles = []
        dynamic = [t for t in network.inputs if -1 in t.shape]
        if dynamic and not config.profiles:
            self.logger.log(Logger.ERROR, "Network has dynamic or shape inputs, but no optimization profile "
                                          "has been defined.")
            return None
        for tensor in network.inputs:
            shapes = config.profiles[0].shapes.get(tensor.name) if config.profiles else None
            if shapes is None:
                if tensor in dynamic:
                    self.logger.log(Logger.ERROR, f"{tensor.name}: dynamic input missing from the profile")
                    return None
                shapes = (tensor.shape,) * 3
            profiles.append(shapes)
        header = {
            "version": __version__,
            "tensors": [{"name": t.name, "mode": mode, "shape": list(t.shape), "dtype": t.dtype.name}
                        for mode, group in (("INPUT", network.inputs), ("OUTPUT", network.outputs)) for t in group],
            "profile": {t.name: [list(s) for s in shapes] for t, shapes in zip(network.inputs, profiles)},
            "flags": sorted(f.name for f in config.flags),
            "onnx_bytes": len(network.onnx),
        }
        if config.timing_cache is not None:
            config.timing_cache.entries.append(f"{len(config.timing_cache.entries)}")
        return _MAGIC + json.dumps(header).encode() + b"\n" + network.onnx


class ICudaEngine:
    def __init__(self, header: dict, onnx: bytes):
        self.tensors = {t["name"]: t for t in header["tensors"]}
        self.names = [t["name"] for t in header["tensors"]]
        self.profile = header["profile"]
        self.onnx = onnx
        self._session = None

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode[self.tensors[name]["mode"]] if name in self.tensors else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self.tensors[name]["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.tensors[name]["dtype"]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple]:
        if profile_index != 0 or name not in self.profile:
            raise IndexError(f"no profile shape for {name!r} in profile {profile_index}")
        return [tuple(s) for s in self.profile[name]]

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The network's outputs (the ONNX graph run by ONNX Runtime)."""
        if self._session is None:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, inputs)))


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self.engine = engine
        self.addresses: dict[str, int] = {}
        self.input_shapes: dict[str, tuple] = {n: s for n, s in ((n, engine.get_tensor_shape(n))
                                                                 for n in engine.names
                                                                 if engine.get_tensor_mode(n) == TensorIOMode.INPUT)
                                               if -1 not in s}

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.tensors:
            return False
        self.addresses[name] = int(address)
        return True

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(shape)
        if _control("set_input_shape") or self.engine.get_tensor_mode(name) != TensorIOMode.INPUT:
            return False
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        if len(shape) != len(low) or any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            return False
        self.input_shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        if self.engine.get_tensor_mode(name) == TensorIOMode.INPUT:
            return self.input_shapes.get(name, self.engine.get_tensor_shape(name))
        batch = next(iter(self.input_shapes.values()))[0]
        return tuple(batch if d == -1 else d for d in self.engine.get_tensor_shape(name))

    def execute_async_v3(self, stream_handle: int) -> bool:
        engine = self.engine
        inputs = [n for n in engine.names if engine.get_tensor_mode(n) == TensorIOMode.INPUT]
        if _control("execute") or any(n not in self.addresses for n in engine.names) \
                or any(n not in self.input_shapes for n in inputs) or stream_handle not in gpu.streams:
            return False
        _log("execute")
        shapes = {n: self.get_tensor_shape(n) for n in engine.names}

        def run() -> None:
            values = {}
            for name in inputs:
                dtype = np.dtype(nptype(engine.get_tensor_dtype(name)))
                nbytes = int(np.prod(shapes[name])) * dtype.itemsize
                values[name] = np.frombuffer(gpu.memory.view(self.addresses[name], nbytes, "execute"),
                                             dtype).reshape(shapes[name]).copy()
            for name, value in engine.run(values).items():
                value = np.ascontiguousarray(value, nptype(engine.get_tensor_dtype(name)))
                gpu.memory.view(self.addresses[name], value.nbytes, "execute")[:] = value.tobytes()

        gpu.streams[stream_handle].enqueue(run)
        return True


class Runtime:
    def __init__(self, logger: Logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
        if not data.startswith(_MAGIC):
            self.logger.log(Logger.ERROR, "IRuntime::deserializeCudaEngine: not a serialized engine")
            return None
        header_text, _, onnx = data[len(_MAGIC):].partition(b"\n")
        try:
            header = json.loads(header_text)
            complete = len(onnx) == header["onnx_bytes"]
        except (ValueError, KeyError, TypeError):
            complete = False
        if not complete:
            self.logger.log(Logger.ERROR, "IRuntime::deserializeCudaEngine: the serialized engine is truncated "
                                          "or corrupt")
            return None
        if header["version"] != __version__:
            self.logger.log(Logger.ERROR, f"engine built by TensorRT {header['version']}, this is {__version__}")
            return None
        return ICudaEngine(header, onnx)
