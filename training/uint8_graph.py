"""Wrap any float-logits ONNX segmenter in the runtime's uint8 contract (model format 2).

    pixels uint8 (N, H, W, 3) -> Cast -> Transpose (NCHW) -> BatchNormalization (x * scale + offset)
           -> [float core] -> logits
    logits -> ArgMax -> Gather(class table) -> Cast -> labels uint8 (N, H, W)
    logits, argmax -> GatherElements (max) -> Sub -> Exp -> 1x1 Conv of ones (sum) -> 255 / sum -> Cast
                   -> confidence uint8 (N, H, W)

The core is whatever `torch.onnx.export` wrote for the network (BiSegUNet or a torchvision peer),
so one function gives every model the same head and tail. The confidence is the largest softmax
probability written without a Softmax: softmax_k = exp(l_k - m) / sum_j exp(l_j - m) with
m = max_j l_j, so at k = argmax it is exactly 1 / sum_j exp(l_j - m). That skips the division of
every class's probability and every reduction over the class axis but the ArgMax the labels need
anyway: ONNX Runtime's Softmax, ReduceMax and ReduceSum over the class axis of NCHW logits are
slow (a Softmax cost most of the tail: issue 23), so m is read at the ArgMax's index
(GatherElements, exactly the max) and the sum is a 1x1 convolution with weights 1 (a GEMM over
the class axis, in the logits' own layout: no transpose). Op choices follow TensorRT 10's rules:
- TensorRT converts uint8 only to and from float32/float16 (tensorrt.DataType.UINT8: "uint8
  conversions are not supported for int8, int32, bool"), so the uint8 input is cast to float
  and the labels go through float before the final Cast to uint8;
- ArgMax takes FP32/FP16 and gives indices (int64 in ONNX, int32 inside TensorRT); a Gather of a
  float class table by those indices turns them into float class ids and applies the class
  filter fixed at export in the same step (the identity table when there is none);
- float -> uint8 Cast truncates towards zero in TensorRT and ONNX Runtime alike; 255 / sum is
  within [255 / C, 255] (sum >= 1: its largest term is exp(0)), so truncation is the whole
  rounding rule (as numpy's astype).
Every op is in training/tensorrt_onnx_ops.txt. Nodes added here are named `uint8_io/...`, so
the quantizer can leave them in float; the confidence branch feeds nothing else, so a runtime
that needs no confidence can drop it (bisegunet_ros/onnx_wire.py).

The normalisation x * scale + offset is one BatchNormalization (mean 0, variance 1, epsilon 0: the
same two float operations per element; bit for bit on ONNX Runtime's CPU, within an ulp where a
runtime fuses them). As a Mul and an Add of (1, 3, 1, 1) constants,
ONNX Runtime's layout transformer moved them into NHWC next to the QLinearConvs of a CPU INT8
graph and ran them with a transpose and a 3-wide broadcast over the full-resolution frame: the
most expensive part of the head of `fast`'s INT8 frame (ORT's profile, bench/backends.md). The
BatchNormalization stays one NCHW kernel in FP32 and INT8 graphs alike; TensorRT parses it too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .normalisation import scale_offset

PREFIX = "uint8_io/"
INPUT, LABELS, CONFIDENCE, LOGITS = "pixels", "labels", "confidence", "logits"


def class_table(num_classes: int, class_filter: Sequence[int] = (), background_id: int = 0) -> np.ndarray:
    """float32 lookup: class id -> published id (filtered classes -> background_id)."""
    if num_classes > 256:
        raise ValueError(f"{num_classes} classes do not fit uint8 labels (at most 256)")
    bad = [c for c in (*class_filter, background_id) if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"class ids {bad} are outside 0..{num_classes - 1}")
    table = np.arange(num_classes, dtype=np.float32)
    table[list(class_filter)] = background_id
    return table


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def compose_uint8_graph(core: onnx.ModelProto, mean: Sequence[float], std: Sequence[float], num_classes: int,
                        class_filter: Sequence[int] = (), background_id: int = 0,
                        logits: bool = False) -> onnx.ModelProto:
    """The uint8 model around `core` (one float NCHW input, float (N, C, H, W) logits as its first output).

    `mean`/`std` are the checkpoint's (training/normalisation.py); `logits=True` keeps the float
    logits as a third output for evaluation and tests. Metadata is left to the caller.
    """
    graph = core.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(_dims(inputs[0])) != 4 or _dims(inputs[0])[1] != 3:
        raise ValueError(f"the core must have one float (N, 3, H, W) input; it has {[i.name for i in inputs]}")
    if inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError(f"the core's input {inputs[0].name!r} is not float32: already in the uint8 format?")
    core_in, core_out = inputs[0].name, graph.output[0].name
    batch, _, height, width = _dims(inputs[0])
    taken = {t for n in graph.node for t in (*n.input, *n.output)} | initializers | {core_in}
    clash = taken & {INPUT, LABELS, CONFIDENCE, PREFIX + "scale"} - {core_out}
    if clash:
        raise ValueError(f"the core already uses the names {sorted(clash)}")
    scale, offset = scale_offset(mean, std)
    constants = [
        numpy_helper.from_array(scale, PREFIX + "scale"),
        numpy_helper.from_array(offset, PREFIX + "offset"),
        numpy_helper.from_array(np.zeros(3, np.float32), PREFIX + "zero_mean"),
        numpy_helper.from_array(np.ones(3, np.float32), PREFIX + "unit_variance"),
        numpy_helper.from_array(class_table(num_classes, class_filter, background_id), PREFIX + "class_table"),
        numpy_helper.from_array(np.array(255.0, np.float32), PREFIX + "255"),
        numpy_helper.from_array(np.array([1], np.int64), PREFIX + "class_axis"),
        numpy_helper.from_array(np.ones((1, num_classes, 1, 1), np.float32), PREFIX + "ones"),
    ]

    def node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
        return helper.make_node(op, inputs, [output], name=PREFIX + output.removeprefix(PREFIX), **attrs)

    t = PREFIX
    head = [node("Cast", [INPUT], t + "float", to=TensorProto.FLOAT),
            node("Transpose", [t + "float"], t + "nchw", perm=[0, 3, 1, 2]),
            node("BatchNormalization", [t + "nchw", t + "scale", t + "offset", t + "zero_mean", t + "unit_variance"],
                 core_in, epsilon=0.0)]
    tail = [node("ArgMax", [core_out], t + "argmax", axis=1, keepdims=0),
            node("Gather", [t + "class_table", t + "argmax"], t + "label_float", axis=0),
            node("Cast", [t + "label_float"], LABELS, to=TensorProto.UINT8),
            node("Unsqueeze", [t + "argmax", t + "class_axis"], t + "argmax_nchw"),
            node("GatherElements", [core_out, t + "argmax_nchw"], t + "peak", axis=1),
            node("Sub", [core_out, t + "peak"], t + "shifted"),
            node("Exp", [t + "shifted"], t + "exp"),
            node("Conv", [t + "exp", t + "ones"], t + "partition"),
            node("Squeeze", [t + "partition", t + "class_axis"], t + "partition_nhw"),
            node("Div", [t + "255", t + "partition_nhw"], t + "confidence_float"),
            node("Cast", [t + "confidence_float"], CONFIDENCE, to=TensorProto.UINT8)]
    outputs = [helper.make_tensor_value_info(name, TensorProto.UINT8, [batch, height, width])
               for name in (LABELS, CONFIDENCE)]
    if logits:
        if core_out != LOGITS:
            tail.append(node("Identity", [core_out], LOGITS))
        outputs.append(helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, [batch, num_classes, height, width]))
    composed = helper.make_graph(
        head + list(graph.node) + tail, graph.name or "bisegunet",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [batch, height, width, 3])],
        outputs, list(graph.initializer) + constants)
    model = helper.make_model(composed, opset_imports=list(core.opset_import), producer_name="bisegunet-export")
    model.ir_version = core.ir_version
    return model


def float_core(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float network inside a model composed here, by any version of this module: its graph less
    the `uint8_io/` head and tail, normalised float (N, 3, H, W) in, logits (N, C, H, W) out. What
    re-wrapping an exported file with today's head and tail starts from (export.rewrap_float_onnx)."""
    graph = model.graph
    io_nodes = [n for n in graph.node if n.name.startswith(PREFIX)]
    core_nodes = [n for n in graph.node if not n.name.startswith(PREFIX)]
    argmax = [n for n in io_nodes if n.op_type == "ArgMax"]
    head_outputs = {t for n in io_nodes for t in n.output}
    core_inputs = {t for n in core_nodes for t in n.input if t in head_outputs}
    if len(argmax) != 1 or len(core_inputs) != 1:
        raise ValueError(f"not a graph composed by bisegunet-export: {len(argmax)} {PREFIX}ArgMax node(s), "
                         f"{len(core_inputs)} tensor(s) from the {PREFIX} head into the network")
    used = {t for n in core_nodes for t in n.input}
    pixels = next(i for i in graph.input if i.name == INPUT)
    batch, height, width, _ = _dims(pixels)
    num_classes = next(len(numpy_helper.to_array(i)) for i in graph.initializer if i.name == PREFIX + "class_table")
    core = helper.make_graph(
        core_nodes, graph.name,
        [helper.make_tensor_value_info(core_inputs.pop(), TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info(argmax[0].input[0], TensorProto.FLOAT, [batch, num_classes, height, width])],
        [i for i in graph.initializer if i.name in used])
    result = helper.make_model(core, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    result.ir_version = model.ir_version
    return result
