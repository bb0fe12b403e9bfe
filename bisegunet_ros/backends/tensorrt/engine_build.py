"""Build a TensorRT 10 engine from an exported ONNX: `bisegunet-build-engine` (vehicle only).

    bisegunet-build-engine --onnx model.onnx [--precision fp16|fp32] [--cameras 2] [--max-batch 0] [--no-tf32]
        [--engine-cache-dir DIR]
    bisegunet-build-engine --onnx model.int8.onnx --precision int8

Writes into the engine cache directory (default $ROS_HOME/bisegunet_engines, i.e.
~/.ros/bisegunet_engines) the engine named by precision, batch profile, TensorRT version and GPU,
its JSON sidecar (engine_cache.py) and a timing cache that makes the next build fast. The batch
profile is the node's: tuned (opt) for the number of cameras, valid from 1 to max_batch (0 = the
number of cameras), so give the node's `cameras` count and `max_batch` to build the engine it uses.
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

from ...cli_args import COUNT, COUNT_OR_ALL
from ...model_info import ModelError, ModelInfo
from .availability import TensorRTUnavailable, import_tensorrt, unavailable_reason
from .cuda_context import CudaContext, CudaError
from .engine_cache import (PRECISIONS, EngineCacheError, EngineKey, engine_path, prepare_cache_dir, read_verified,
                           resolve_engine, timing_cache_path, write_with_sidecar)

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 2 << 30


class TensorRTError(RuntimeError):
    """TensorRT refused a call (it reports by return value); the message says which and with what."""


def checked(result, call: str):
    """`result` of TensorRT call `call`, or TensorRTError when TensorRT reported failure (None or False)."""
    if result is None or result is False:
        raise TensorRTError(f"TensorRT's {call} failed (see its log above)")
    return result


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


def batch_range(facts: OnnxFacts, opt_batch: int, max_batch: int = 0) -> tuple[int, int, int]:
    """The profile's (min, opt, max) batch sizes for a dynamic batch: 1, the number of cameras (the batch the
    node runs every call when all cameras keep up; max_batch when that is smaller, as the node then splits
    its calls), max_batch (0 = opt_batch); the fixed size otherwise."""
    max_batch = max_batch or opt_batch
    if opt_batch < 1 or max_batch < 1:
        raise ValueError(f"cameras ({opt_batch}) and max_batch ({max_batch}, 0 = cameras) must be at least 1")
    return (facts.batch,) * 3 if facts.batch else (1, min(opt_batch, max_batch), max_batch)


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


def current_key(cuda: CudaContext, onnx: Path, precision: str, batches: tuple[int, int, int],
                tf32: bool) -> EngineKey:
    """The key an engine must have to run on this machine with this ONNX and these builder settings."""
    trt = import_tensorrt()
    return EngineKey.of(trt.__version__, cuda.name, cuda.compute_capability, precision, onnx, batches, tf32)


def use_timing_cache(trt, config, timing_file: Path) -> None:
    """Give the build the timing cache of earlier builds when it is intact and TensorRT accepts it, else an
    empty one (with a warning): a damaged cache costs build time, never the build."""
    data = read_verified(timing_file) or b""
    timing = config.create_timing_cache(data)
    if timing is not None and config.set_timing_cache(timing, ignore_mismatch=False):
        return
    if data:
        log.warning("timing cache %s was refused by TensorRT %s; building without it", timing_file,
                    trt.__version__)
        timing = config.create_timing_cache(b"")
        if timing is not None and config.set_timing_cache(timing, ignore_mismatch=False):
            return
    raise TensorRTError("TensorRT's create_timing_cache/set_timing_cache failed for an empty cache")


def build_engine(onnx: Path, precision: str, input_name: str, batches: tuple[int, int, int], tf32: bool,
                 timing_file: Path) -> bytes:
    """Parse `onnx`, build for `precision` with a profile over `batches`; the serialized engine. Writes the
    timing cache (with its sidecar) for the next build.

    Runs with a CUDA context current (the builder uses the CUDA runtime).
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = checked(trt.Builder(logger), "Builder()")
    network = checked(builder.create_network(0), "create_network")
    parser = checked(trt.OnnxParser(network, logger), "OnnxParser()")
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx}: TensorRT could not parse it: {errors or 'no error reported'}")
    config = checked(builder.create_builder_config(), "create_builder_config")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    use_timing_cache(trt, config, timing_file)

    shape = tuple(network.get_input(0).shape)
    if shape[0] == -1:
        profile = checked(builder.create_optimization_profile(), "create_optimization_profile")
        profile.set_shape(input_name, *[(batch, *shape[1:]) for batch in batches])
        if config.add_optimization_profile(profile) < 0:
            raise TensorRTError(f"TensorRT refused the optimization profile for {input_name}, batch "
                                f"{'-'.join(map(str, batches))} (min-opt-max)")
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT's builder config
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: scales come from the QDQ nodes

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {onnx} (see its log above)")
    timing = checked(config.get_timing_cache(), "get_timing_cache")
    write_with_sidecar(timing_file, bytes(checked(timing.serialize(), "ITimingCache.serialize")))
    log.info("built %s engine from %s; timing cache %s", precision, onnx, timing_file)
    return bytes(serialized)


def ensure_engine(cuda: CudaContext, onnx: Path, precision: str, cameras: int, max_batch: int, tf32: bool,
                  cache_dir: Path, rebuild: bool = False) -> Path:
    """An engine valid for this machine, `onnx`, `precision`, batch profile and TF32 setting, built when needed.

    Call with `cuda` current.
    """
    facts = inspect_onnx(onnx)
    check_precision(onnx, facts, precision)
    batches = batch_range(facts, cameras, max_batch)
    key = current_key(cuda, onnx, precision, batches, tf32)
    if rebuild:
        engine_path(cache_dir, onnx, key).unlink(missing_ok=True)
    return resolve_engine(cache_dir, onnx, key, lambda src: build_engine(
        src, precision, facts.input_name, batches, tf32, timing_cache_path(cache_dir, onnx, key)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path, help="model written by bisegunet-export (or -quantize)")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS,
                        help="int8 needs the QDQ model from bisegunet-quantize")
    parser.add_argument("--cameras", type=COUNT, default=1,
                        help="cameras of the node: the batch the engine is tuned for (profile opt)")
    parser.add_argument("--max-batch", type=COUNT_OR_ALL, default=0,
                        help="largest batch the engine takes (profile max); 0 = the number of cameras")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false",
                        help="forbid TF32 tactics for FP32 layers (TensorRT allows them by default)")
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
                engine = ensure_engine(cuda, args.onnx, args.precision, args.cameras, args.max_batch, args.tf32,
                                       cache_dir, rebuild=True)
        finally:
            cuda.close()
    except (ModelError, EngineCacheError, TensorRTUnavailable, CudaError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    print(engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
