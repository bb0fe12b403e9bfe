"""Build a TensorRT 10 engine from an exported ONNX: `bisegunet-build-engine` (vehicle only).

    bisegunet-build-engine --onnx model.onnx [--precision fp16|fp32] [--max-batch 4] [--engine-cache-dir DIR]
    bisegunet-build-engine --onnx model.int8.onnx --precision int8

Writes into the engine cache directory (default $ROS_HOME/bisegunet_engines, i.e.
~/.ros/bisegunet_engines) the engine named by precision, batch range, TensorRT version and GPU,
its JSON sidecar (engine_cache.py) and a timing cache that makes the next build fast.
INT8 is explicit quantization: the engine is built from the QDQ model written by
bisegunet-quantize (its scales are in the graph), with TensorRT's INT8 and FP16 kernels allowed.
The node builds the same engine on first start when none matches.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from ...model_info import ModelError, ModelInfo
from .availability import TensorRTUnavailable, import_tensorrt, unavailable_reason
from .cuda_context import CudaContext, CudaError
from .engine_cache import (PRECISIONS, EngineCacheError, EngineKey, engine_path, prepare_cache_dir, resolve_engine,
                           sha256_of, timing_cache_path)

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 2 << 30


@dataclass(frozen=True)
class OnnxFacts:
    """What the engine build needs to know about the ONNX model before TensorRT sees it."""

    input_name: str
    batch: int | None      # fixed batch size, None when the batch dimension is dynamic
    quantized: bool        # the QDQ model of bisegunet-quantize (explicit INT8)
    int8_target: str | None = None   # "tensorrt" or "cpu" (ModelInfo.int8_target)


def inspect_onnx(onnx: Path) -> OnnxFacts:
    """Input name and batch size (read by ONNX Runtime, a runtime dependency; the onnx package is not)
    and whether it is the QDQ model (bisegunet-quantize records precision int8 in the metadata)."""
    import onnxruntime as ort

    info = ModelInfo.from_onnx(onnx)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        tensor = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"]).get_inputs()[0]
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelError(f"{onnx}: not a loadable ONNX model ({exc})") from exc
    batch = tensor.shape[0]
    return OnnxFacts(tensor.name, batch if isinstance(batch, int) and batch > 0 else None,
                     info.extra.get("precision") == "int8", info.int8_target)


def batch_range(facts: OnnxFacts, max_batch: int) -> tuple[int, int]:
    """The profile's batch sizes: 1..max_batch for a dynamic batch, the fixed size otherwise."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    return (facts.batch, facts.batch) if facts.batch else (1, max_batch)


def check_precision(onnx: Path, facts: OnnxFacts, precision: str) -> None:
    """INT8 engines come from a QDQ model and a QDQ model only builds as INT8; say so otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and not facts.quantized:
        raise ModelError(f"{onnx}: precision int8 needs the QDQ model written by bisegunet-quantize "
                         "(explicit quantization); this ONNX is not one (its metadata has no precision int8)")
    if facts.int8_target == "cpu":
        raise ModelError(f"{onnx}: this INT8 model is the one for ONNX Runtime on a CPU (uint8 activations with zero "
                         "points, which TensorRT's parser refuses); give the TensorRT INT8 model that "
                         "bisegunet-quantize wrote beside it (NAME.int8.onnx)")
    if facts.quantized and precision != "int8":
        raise ModelError(f"{onnx}: this is a QDQ (INT8) model; build it with precision int8, or give the "
                         f"float model for {precision}")


def current_key(cuda: CudaContext, onnx: Path, precision: str, batches: tuple[int, int]) -> EngineKey:
    """The key an engine must have to run on this machine with this ONNX."""
    trt = import_tensorrt()
    return EngineKey(trt.__version__, cuda.name, cuda.compute_capability, precision, sha256_of(onnx),
                     f"{batches[0]}-{batches[1]}")


def build_engine(onnx: Path, engine: Path, precision: str, input_name: str, batches: tuple[int, int],
                 timing_file: Path) -> None:
    """Parse `onnx`, build for `precision` with a profile over `batches`, write `engine` and the timing cache.

    Runs with a CUDA context current (the builder uses the CUDA runtime).
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx}: TensorRT could not parse it: {errors or 'no error reported'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    if not config.set_timing_cache(timing, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this TensorRT; building without it", timing_file)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    shape = tuple(network.get_input(0).shape)
    if shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, (batches[0], *shape[1:]), (batches[1], *shape[1:]), (batches[1], *shape[1:]))
        config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: scales come from the QDQ nodes

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx} (see its log above)")
    tmp = engine.with_name(engine.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine)
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    log.info("wrote %s (%s) and timing cache %s", engine, precision, timing_file)


def ensure_engine(cuda: CudaContext, onnx: Path, precision: str, max_batch: int, cache_dir: Path,
                  rebuild: bool = False) -> Path:
    """An engine valid for this machine, `onnx`, `precision` and batch range, built when needed.

    Call with `cuda` current.
    """
    facts = inspect_onnx(onnx)
    check_precision(onnx, facts, precision)
    batches = batch_range(facts, max_batch)
    key = current_key(cuda, onnx, precision, batches)
    if rebuild:
        engine_path(cache_dir, onnx, key).unlink(missing_ok=True)
    return resolve_engine(cache_dir, onnx, key, lambda src, dst: build_engine(
        src, dst, precision, facts.input_name, batches, timing_cache_path(cache_dir, onnx, key)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path, help="model written by bisegunet-export (or -quantize)")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS,
                        help="int8 needs the QDQ model from bisegunet-quantize")
    parser.add_argument("--max-batch", type=int, default=4, help="largest batch (cameras per call)")
    parser.add_argument("--engine-cache-dir", default="",
                        help="where engines are written (default $ROS_HOME/bisegunet_engines, ~/.ros when unset)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reason = unavailable_reason()
    if reason:
        log.error("cannot build a TensorRT engine here: %s", reason)
        return 2
    if not args.onnx.is_file():
        log.error("%s: model file not found", args.onnx)
        return 1
    try:
        cache_dir = prepare_cache_dir(args.engine_cache_dir)
        cuda = CudaContext(0)
        try:
            with cuda.current("building the TensorRT engine"):
                engine = ensure_engine(cuda, args.onnx, args.precision, args.max_batch, cache_dir, rebuild=True)
        finally:
            cuda.close()
    except (ModelError, EngineCacheError, TensorRTUnavailable, CudaError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    print(engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
