"""`bisegunet-quantize`: INT8 ONNX for the CPU (beyond the paper), with ONNX Runtime static quantization.

    bisegunet-quantize --onnx models/NAME.onnx --out models/NAME.int8.onnx [--frames 64]

QDQ format, per-channel symmetric INT8 weights: a binary conv's weights are +-alpha_c per
channel, so per-channel INT8 represents them exactly; activations are calibrated on synthetic
street scenes at the model's input size. Metadata is carried over, with precision "int8".
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from bisegunet_ros.model_info import PREFIX, ModelError, ModelInfo

from .data.scenes import render_scene

log = logging.getLogger(__name__)


class SceneReader(CalibrationDataReader):
    """Normalised synthetic frames, one per call, at the model's input size."""

    def __init__(self, info: ModelInfo, input_name: str, frames: int, seed: int):
        self.batches = (self._frame(info, i, seed) for i in range(frames))
        self.input_name = input_name

    @staticmethod
    def _frame(info: ModelInfo, index: int, seed: int) -> np.ndarray:
        rgb, _ = render_scene(seed, index, info.input_height, info.input_width)
        normalised = (rgb / 255.0 - np.asarray(info.mean)) / np.asarray(info.std)
        return normalised.transpose(2, 0, 1)[None].astype(np.float32)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def quantize(onnx_path: str | Path, out: str | Path, frames: int = 64, seed: int = 7_000_001) -> Path:
    """Write the INT8 QDQ model; calibration scenes come from a seed no training split uses."""
    onnx_path, out = Path(onnx_path), Path(out)
    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    info = ModelInfo.from_metadata(props, str(onnx_path))
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantize_static(str(prepared), str(out), SceneReader(info, model.graph.input[0].name, frames, seed),
                        quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax)
    quantized = onnx.load(str(out))
    props[PREFIX + "precision"] = json.dumps("int8")
    onnx.helper.set_model_props(quantized, props)
    onnx.save(quantized, str(out))
    log.info("wrote %s (INT8 QDQ, calibrated on %d synthetic frames)", out, frames)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=64, help="calibration frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        quantize(args.onnx, args.out, args.frames)
    except (ModelError, OSError) as exc:
        log.error("%s", exc)
        return 1
    except DecodeError as exc:
        log.error("%s: not an ONNX model (%s)", args.onnx, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
