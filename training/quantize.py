"""`bisegunet-quantize`: the two INT8 QDQ models, one TensorRT builds on the vehicle and one ONNX Runtime runs on a CPU.

    bisegunet-quantize --onnx models/NAME.onnx --out models/NAME.int8.onnx [--target both|tensorrt|cpu] [--frames 64]

`--target both` (the default) writes the TensorRT model to --out and the CPU model beside it
(NAME.int8-cpu.onnx, bisegunet_ros.model_info.cpu_int8_path); `--target cpu` writes only the CPU
model, to --out. Metadata is carried over, with precision "int8" and `int8_target` saying which
one a file is; the ONNX Runtime backend runs the CPU one when given either (it lies beside the
TensorRT one), TensorRT refuses the CPU one.

Both are explicit quantization (QDQ) with per-channel symmetric int8 weights: a binary conv's
weights are +-alpha_c per channel, so per-channel int8 represents them exactly (sign x scale, the
scale alpha_c / 127). They differ in the activations, because the two runtimes want different ones:
- tensorrt: symmetric int8 activations with zero point 0 (TensorRT's ONNX parser refuses other
  zero points), biases left float (TensorRT quantizes no biases), Q/DQ on the inputs of each
  quantized op only. ONNX Runtime fuses few of these into integer kernels (its CPU QLinearConv
  wants uint8 activations): on a CPU this model runs mostly float convolutions between Q/DQ pairs.
- cpu: asymmetric uint8 activations and int32 biases, Q/DQ on every quantized op's inputs and
  outputs, so ONNX Runtime's graph optimiser turns each DQ -> Conv -> Q into QLinearConv (u8s8
  kernels; VNNI where the CPU has it). Before quantization its convolutions are widened to what
  ONNX Runtime's fastest integer kernel takes (narrow ones given zero filters up to at least 16
  outputs, grouped ones ungrouped: `integer_kernels`, the same function); the few it cannot widen
  and whose integer kernel runs slower than the float one stay float (`float_convolutions`; the
  backend keeps ONNX Runtime from quantizing them again, onnxruntime_backend.CPU_INT8_DISABLED_OPTIMIZERS).
Both start from ONNX Runtime's `quant_pre_process` (shape inference and graph clean-up, without
which fewer convolutions are fused). Calibration feeds uint8 synthetic street scenes at the
model's input size through the model's own graph (model format 2), so its normalisation is the
one the graph holds. The uint8 head and the label/confidence tail (`uint8_io/...` nodes) stay in float,
and so does the upsampling of the logits of a decoder that stops at output_stride > 1 (`logits_upsampling`).
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

from bisegunet_ros.backends.onnxruntime_backend import inference_session, session_options
from bisegunet_ros.cli_args import COUNT
from bisegunet_ros.model_info import PREFIX, ModelError, ModelInfo, cpu_int8_path

from .data.scenes import render_scene
from .integer_kernels import MIN_OUTPUT_CHANNELS, attribute, constants, widen_convolutions
from .uint8_graph import INPUT, without_dead_nodes
from .uint8_graph import PREFIX as IO_PREFIX

log = logging.getLogger(__name__)
TARGETS = ("tensorrt", "cpu")
QDQ_OPTIONS = {"tensorrt": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                            "OpTypesToExcludeOutputQuantization": ["Conv"]},
               "cpu": {"ActivationSymmetric": False, "WeightSymmetric": True}}
ACTIVATION_TYPE = {"tensorrt": QuantType.QInt8, "cpu": QuantType.QUInt8}
INTEGER_CONVS, FLOAT_CONVS = ("QLinearConv", "ConvInteger"), ("Conv", "FusedConv")
FLOAT_CONV_MIN_KERNEL_AREA = 49   # float_convolutions, CPU target only


class SceneReader(CalibrationDataReader):
    """uint8 RGB synthetic frames (1, H, W, 3), one per call, at the model's input size."""

    def __init__(self, info: ModelInfo, frames: int, seed: int):
        self.batches = (render_scene(seed, i, info.input_height, info.input_width)[0][None] for i in range(frames))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT: batch}


def logits_upsampling(graph: onnx.GraphProto) -> list[str]:
    """The nodes between the network's head and the tail's ArgMax (the bilinear upsampling of a decoder that
    stops at output_stride > 1, a crop of padding): left float like the tail. Quantized, they would upsample
    uint8 logits and dequantize every full-size logit, which costs more than the float upsampling of the
    small logits, and round the logits the labels are chosen from."""
    producer = {out: node for node in graph.node for out in node.output}
    argmax = next(n for n in graph.node if n.op_type == "ArgMax" and n.name.startswith(IO_PREFIX))
    names, node = [], producer.get(argmax.input[0])
    while node is not None and node.op_type in ("Resize", "Slice"):
        names.append(node.name)
        node = producer.get(node.input[0])
    return names


def float_head_and_tail(graph: onnx.GraphProto) -> list[str]:
    """The nodes both INT8 models leave float whatever they are: the uint8 head and the label/confidence
    tail (`uint8_io/` nodes) and the upsampling of the logits (`logits_upsampling`)."""
    return [n.name for n in graph.node if n.name.startswith(IO_PREFIX)] + logits_upsampling(graph)


def float_convolutions(graph: onnx.GraphProto) -> list[str]:
    """The convolutions the CPU model leaves float: ungrouped, with a kernel of at least
    FLOAT_CONV_MIN_KERNEL_AREA taps and fewer than MIN_OUTPUT_CHANNELS output channels. Run on
    the graph after integer_kernels.widen_convolutions, which gives every convolution it can at least 16
    outputs, this leaves the few it cannot: the stem's 7x7 stream, whose input is the 3-channel image
    (ONNX Runtime's fast integer kernel wants input channels in fours). Those take QLinearConv's other
    path, an im2col copy of C_in x k x k bytes per output pixel for a GEMM, slower than the float NCHWc
    convolution for a big kernel and few outputs (docs/backends.md)."""
    weights = constants(graph)

    def slower_as_integer(node: onnx.NodeProto) -> bool:
        shape = list(weights[node.input[1]].dims)
        return len(shape) == 4 and attribute(node, "group", 1) == 1 \
            and shape[2] * shape[3] >= FLOAT_CONV_MIN_KERNEL_AREA and shape[0] < MIN_OUTPUT_CHANNELS

    return [n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in weights and slower_as_integer(n)]


def own_float_inputs(quantized: onnx.ModelProto, source: onnx.GraphProto, names: list[str]) -> None:
    """Give each convolution of `names` its own float weight and bias from `source` (the model before
    quantization). Identical initializers end up shared between nodes (an untrained network's
    all-zero folded biases), and the quantizer then feeds a float convolution the dequantized copy of
    a shared one, which keeps ONNX Runtime from its float NCHWc kernel."""
    if not names:
        return
    initializers = constants(source)
    source_nodes = {n.name: n for n in source.node}
    graph = quantized.graph
    missing = set(names) - {n.name for n in graph.node}
    if missing:
        raise ModelError(f"convolutions {sorted(missing)} are not in the quantized graph by name; "
                         "cannot check that they stayed float")
    own = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.name not in names:
            continue
        for index in (1, 2)[:len(node.input) - 1]:
            if not node.input[index] or node.input[index] in own:
                continue
            original = initializers.get(source_nodes[node.name].input[index])
            if original is None:
                raise ModelError(f"convolution {node.name}: input {index} is no initializer; cannot leave it float")
            tensor = onnx.TensorProto()
            tensor.CopyFrom(original)
            tensor.name = f"{node.name}/float_input_{index}"
            graph.initializer.append(tensor)
            node.input[index] = tensor.name
    kept = without_dead_nodes(list(graph.node), {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    for tensor in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(tensor)


def quantize(onnx_path: str | Path, out: str | Path, frames: int = 64, seed: int = 7_000_001,
             target: str = "tensorrt") -> Path:
    """Write the INT8 QDQ model for `target` ("tensorrt" or "cpu"); calibration scenes come from a seed no
    training split uses."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    onnx_path, out = Path(onnx_path), Path(out)
    info = ModelInfo.from_onnx(onnx_path)
    if info.channel_order != "rgb":
        raise ModelError(f"{onnx_path}: calibration renders RGB scenes; this model takes {info.channel_order}")
    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    float_nodes = float_head_and_tail(model.graph)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        source = onnx.load(str(prepared))
        if target == "cpu":     # the same function on ONNX Runtime's fast integer convolution kernel
            widened = widen_convolutions(source.graph, excluded=set(float_nodes))
            source = onnx.shape_inference.infer_shapes(source)
            onnx.save(source, str(prepared))
            log.info("%d convolutions reshaped for ONNX Runtime's integer kernel", len(widened))
        float_convs = float_convolutions(source.graph) if target == "cpu" else []
        quantize_static(str(prepared), str(out), SceneReader(info, frames, seed), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=ACTIVATION_TYPE[target],
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=float_nodes + float_convs,
                        extra_options=QDQ_OPTIONS[target])
    quantized = onnx.load(str(out))
    own_float_inputs(quantized, source.graph, float_convs)
    props.update({PREFIX + "precision": json.dumps("int8"), PREFIX + "int8_target": json.dumps(target)})
    onnx.helper.set_model_props(quantized, props)
    onnx.save(quantized, str(out))
    log.info("wrote %s (INT8 QDQ for %s, calibrated on %d synthetic frames)", out, target, frames)
    return out


def integer_convolutions(onnx_path: str | Path) -> tuple[int, int]:
    """(integer, all) convolutions of the network in ONNX Runtime's optimised CPU graph, made with the
    backend's session options and saved through SessionOptions.optimized_model_filepath; the
    `uint8_io/` head and tail (float by design) aside. Integer: QLinearConv or ConvInteger, which
    ONNX Runtime forms from DQ -> Conv -> Q; the rest run as float convolutions."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(1)
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        options.log_severity_level = 3        # not the warning that an NCHWc-optimised file is machine-specific
        inference_session(str(onnx_path), options, ModelInfo.from_onnx(onnx_path).int8_target)
        nodes = onnx.load(options.optimized_model_filepath).graph.node
    convs = [n.op_type for n in nodes
             if n.op_type in (*INTEGER_CONVS, *FLOAT_CONVS) and not n.name.startswith(IO_PREFIX)]
    return sum(op in INTEGER_CONVS for op in convs), len(convs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path,
                        help="the TensorRT model (NAME.int8.onnx; the CPU one goes beside it), or with --target cpu "
                             "the CPU model")
    parser.add_argument("--target", choices=("both", *TARGETS), default="both",
                        help="tensorrt: symmetric int8 (zero point 0); cpu: uint8 activations for ONNX Runtime")
    parser.add_argument("--frames", type=COUNT, default=64, help="calibration frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.target in ("both", "tensorrt"):
            quantize(args.onnx, args.out, args.frames, target="tensorrt")
        if args.target in ("both", "cpu"):
            quantize(args.onnx, cpu_int8_path(args.out) if args.target == "both" else args.out, args.frames,
                     target="cpu")
    except (ModelError, OSError) as exc:
        log.error("%s", exc)
        return 1
    except DecodeError as exc:
        log.error("%s: not an ONNX model (%s)", args.onnx, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
