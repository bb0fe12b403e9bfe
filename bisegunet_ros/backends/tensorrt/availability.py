"""Whether the TensorRT backend can run on this machine, and the TensorRT module when it can."""
from __future__ import annotations

import importlib.util
from types import ModuleType

MIN_TENSORRT_MAJOR = 10


class TensorRTUnavailable(RuntimeError):
    """TensorRT, pycuda or a CUDA device is missing, or TensorRT is too old for this code."""


def import_tensorrt() -> ModuleType:
    """The `tensorrt` module, refusing versions before 10 (named-tensor API, `execute_async_v3`)."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(f"python module 'tensorrt' is not importable ({exc}); it comes with "
                                  "JetPack 6.1 or later (TensorRT 10)") from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} is too old: this backend needs TensorRT {MIN_TENSORRT_MAJOR} or later "
            "(first shipped with JetPack 6.1; JetPack 6.0 has TensorRT 8.6). Upgrade JetPack, or use "
            "backend onnxruntime")
    return trt


def unavailable_reason() -> str | None:
    """Why TensorRT cannot be used here, or None when it can."""
    for module, where in (("tensorrt", "JetPack 6.1 or later"),
                          ("pycuda", "`pip install pycuda`, built against /usr/local/cuda")):
        if importlib.util.find_spec(module) is None:
            return f"python module '{module}' is not installed (on the vehicle: {where})"
    try:
        import_tensorrt()
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except TensorRTUnavailable as exc:
        return str(exc)
    except Exception as exc:  # pycuda raises its own error types when no driver is loaded
        return f"CUDA is not usable: {exc}"
    return None
