"""`bisegunet-quantize`: one INT8 QDQ model that ONNX Runtime runs on the CPU and TensorRT builds on the vehicle.

    bisegunet-quantize --onnx models/NAME.onnx --out models/NAME.int8.onnx [--frames 64]

Explicit quantization (QDQ), the form TensorRT 10 takes instead of implicit calibration:
symmetric int8 activations (zero point 0, which TensorRT's ONNX parser requires) and
per-channel symmetric int8 weights; a binary conv's weights are +-alpha_c per channel, so
per-channel int8 represents them exactly. Biases stay float (TensorRT quantizes no biases).
Calibration feeds uint8 synthetic street scenes at the model's input size through the model's
own graph (model format 2), so its normalisation is the one the graph holds. The uint8 head and
the label/confidence tail (`uint8_io/...` nodes) stay in float. Metadata is carried over, with
precision "int8".
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from bisegunet_ros.cli_args import COUNT
from bisegunet_ros.model_info import PREFIX, ModelError, ModelInfo

from .data.scenes import render_scene
from .uint8_graph import INPUT
from .uint8_graph import PREFIX as IO_PREFIX

log = logging.getLogger(__name__)
QDQ_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
               "OpTypesToExcludeOutputQuantization": ["Conv"]}


class SceneReader(CalibrationDataReader):
    """uint8 RGB synthetic frames (1, H, W, 3), one per call, at the model's input size."""

    def __init__(self, info: ModelInfo, frames: int, seed: int):
        self.batches = (render_scene(seed, i, info.input_height, info.input_width)[0][None] for i in range(frames))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT: batch}


def quantize(onnx_path: str | Path, out: str | Path, frames: int = 64, seed: int = 7_000_001) -> Path:
    """Write the INT8 QDQ model; calibration scenes come from a seed no training split uses."""
    onnx_path, out = Path(onnx_path), Path(out)
    info = ModelInfo.from_onnx(onnx_path)
    if info.channel_order != "rgb":
        raise ModelError(f"{onnx_path}: calibration renders RGB scenes; this model takes {info.channel_order}")
    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    io_nodes = [n.name for n in model.graph.node if n.name.startswith(IO_PREFIX)]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantize_static(str(prepared), str(out), SceneReader(info, frames, seed), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=io_nodes,
                        extra_options=QDQ_OPTIONS)
    quantized = onnx.load(str(out))
    props[PREFIX + "precision"] = json.dumps("int8")
    onnx.helper.set_model_props(quantized, props)
    onnx.save(quantized, str(out))
    log.info("wrote %s (INT8 QDQ, symmetric, calibrated on %d synthetic frames)", out, frames)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frames", type=COUNT, default=64, help="calibration frames")
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
