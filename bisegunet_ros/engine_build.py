"""Build a TensorRT 10 engine from the exported ONNX: `bisegunet-build-engine` (vehicle only).

    bisegunet-build-engine --onnx model.onnx --precision fp16|int8|fp32 [--calib-images DIR]

Writes the engine named by TensorRT version, GPU and precision next to the ONNX, its JSON
sidecar (engine_cache.py) and a timing cache that makes the next build fast. INT8 needs
calibration images (any .png/.jpg, ideally frames from the vehicle's cameras).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from .engine_cache import PRECISIONS, engine_path, resolve_engine, timing_cache_path
from .model_info import ModelError, ModelInfo

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 2 << 30


def calibration_batches(directory: str | Path, info, limit: int = 64) -> list[np.ndarray]:
    """Normalised (1, 3, H, W) float32 frames from the images in `directory` (sorted, at most `limit`)."""
    folder = Path(directory)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:limit] \
        if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"INT8 calibration needs images: {folder} is missing or holds no .png/.jpg; "
                                "pass --calib-images with a folder of camera frames")
    mean, std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)
    batches = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: unreadable image in the calibration folder")
        rgb = cv2.resize(bgr[..., ::-1], (info.input_width, info.input_height), interpolation=cv2.INTER_AREA)
        if info.channel_order == "bgr":
            rgb = rgb[..., ::-1]
        batches.append(((rgb / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
    return batches


def build_engine(onnx: Path, engine: Path, precision: str, calib_images: str | None = None,
                 max_batch: int = 4) -> None:
    """Parse `onnx`, build for `precision`, write `engine` and update the timing cache."""
    import tensorrt as trt

    from .backends.tensorrt_backend import current_key

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    info = ModelInfo.from_onnx(onnx)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx}: TensorRT could not parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    timing_file = timing_cache_path(onnx, current_key(onnx, precision))
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    tensor = network.get_input(0)
    shape = (3, info.input_height, info.input_width)
    if tensor.shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (1, *shape), (max_batch, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
        config.set_calibration_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(calibration_batches(calib_images or "", info),
                                             onnx.with_suffix(".int8-calibration.cache"))

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx} (see its log above)")
    tmp = engine.with_name(engine.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine)
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    log.info("wrote %s (%s) and timing cache %s", engine, precision, timing_file)


def _calibrator(batches: list[np.ndarray], cache: Path):
    """An entropy calibrator feeding `batches` one at a time (NVIDIA's sample pattern)."""
    import pycuda.driver as cuda
    import tensorrt as trt

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = iter(batches)
            self.device = cuda.mem_alloc(batches[0].nbytes)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            cuda.memcpy_htod(self.device, np.ascontiguousarray(batch))
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path, help="model written by bisegunet-export")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS)
    parser.add_argument("--calib-images", help="folder of frames for INT8 calibration")
    parser.add_argument("--max-batch", type=int, default=4, help="largest batch (cameras per call)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .backends.tensorrt_backend import current_key, unavailable_reason

    reason = unavailable_reason()
    if reason:
        log.error("cannot build a TensorRT engine here: %s", reason)
        return 2
    try:
        key = current_key(args.onnx, args.precision)
        engine = engine_path(args.onnx, key)
        engine.unlink(missing_ok=True)  # an explicit build always builds
        resolve_engine(args.onnx, key, lambda src, dst: build_engine(src, dst, args.precision, args.calib_images,
                                                                      args.max_batch))
    except (ModelError, FileNotFoundError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    print(engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
