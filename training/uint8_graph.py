"""Wrap any float-logits ONNX segmenter in the runtime's uint8 contract (model format 2).

    pixels uint8 (N, H, W, 3) -> Cast -> Transpose (NCHW) -> BatchNormalization (x * scale + offset)
           -> [float core] -> logits
    logits -> ArgMax -> Gather(class table) -> Cast -> labels uint8 (N, H, W)
    logits, argmax -> GatherElements (max) -> Sub -> Exp -> 1x1 Conv of ones (sum) -> 255 / sum -> Cast
                   -> confidence uint8 (N, H, W)
    where the core ends in a bilinear Resize of smaller logits (a decoder stopping at output_stride > 1,
    torchvision's heads), the tail takes that Resize over in NHWC:
    small logits -> Transpose (NHWC) -> Resize -> logits -> ArgMax (last axis) -> Gather -> Cast -> labels
    logits -> Softmax (last axis) -> ReduceMax -> x 255 -> Cast -> confidence

The core is whatever `torch.onnx.export` wrote for the network (BiSegUNet or a torchvision peer),
so one function gives every model the same head and tail. The confidence is the largest softmax
probability; in the NCHW tail it is written without a Softmax:
softmax_k = exp(l_k - m) / sum_j exp(l_j - m) with m = max_j l_j, so at k = argmax it is exactly
1 / sum_j exp(l_j - m). That skips the division of every class's probability and every reduction
over the class axis but the ArgMax the labels need anyway: ONNX Runtime's Softmax, ReduceMax and
ReduceSum over the class axis of NCHW logits are slow (a Softmax cost most of the tail: issue 23),
so m is read at the ArgMax's index (GatherElements, exactly the max) and the sum is a 1x1
convolution with weights 1 (a GEMM over the class axis, in the logits' own layout: no
transpose). In the NHWC tail below the class axis is
the contiguous last one, where ONNX Runtime's Softmax is one pass over each pixel's classes, so
the confidence is the definition itself, the Softmax's largest probability (ReduceMax).
Op choices follow TensorRT 10's rules:
- TensorRT converts uint8 only to and from float32/float16 (tensorrt.DataType.UINT8: "uint8
  conversions are not supported for int8, int32, bool"), so the uint8 input is cast to float
  and the labels go through float before the final Cast to uint8;
- ArgMax takes FP32/FP16 and gives indices (int64 in ONNX, int32 inside TensorRT); a Gather of a
  float class table by those indices turns them into float class ids and applies the class
  filter fixed at export in the same step (the identity table when there is none);
- float -> uint8 Cast truncates towards zero in TensorRT and ONNX Runtime alike; 255 / sum (NCHW)
  and 255 x the largest probability (NHWC) are within [255 / C, 255] (sum >= 1: its largest term
  is exp(0)), so truncation is the whole rounding rule (as numpy's astype).
Every op is in training/tensorrt_onnx_ops.txt. Nodes added here are named `uint8_io/...`, so
the quantizer can leave them in float; the confidence branch feeds nothing else, so a runtime
that needs no confidence can drop it (bisegunet_ros/onnx_wire.py).

The NHWC upsampling (issue 23: no layout transposes of full-resolution tensors): ONNX Runtime runs the
network's convolutions in its blocked NCHWc layout, so an NCHW Resize of their output became an NCHWc
Upsample of classes padded to a multiple of 16 and a full-resolution reorder back to NCHW for the
ArgMax; the transpose of the small logits is the size of the logits before upsampling, and the
ArgMax and the Softmax read each pixel's classes contiguously. The interpolation is the same (the
Resize's own attributes, mappings that act per axis, the same whole-factor scales its sizes give),
computed in another order, so the labels are the network's but where its two best classes are
within float rounding (_final_upsampling says which Resizes qualify; others keep the NCHW tail).
TensorRT resizes the innermost three axes linearly, which (H, W, C) with a scale of 1 on C is.

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


# Resize's coordinate mappings that act on each axis alone, so the same on NCHW and NHWC (not tf_crop_and_resize)
PER_AXIS_MAPPINGS = (b"half_pixel", b"pytorch_half_pixel", b"align_corners", b"asymmetric")


def _final_upsampling(core: onnx.ModelProto, height: int | str, width: int | str
                      ) -> tuple[onnx.NodeProto, list[float]] | None:
    """The core's last node and its H and W scales when it is a bilinear Resize of 4-D logits by whole factors > 1
    to the input size `height` x `width`, which the NHWC tail can take over unchanged; None otherwise (logits made
    at full size, a crop after the Resize, a size off a whole factor or unknown before run time, a Resize whose
    scales input says other than the sizes do, attributes the move would change, subgraphs)."""
    graph = core.graph
    last = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if last is None or last.op_type != "Resize" or not isinstance(height, int) or not isinstance(width, int):
        return None
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return None       # tensors a subgraph reads from outside would escape the pruning below
    attrs = {a.name: helper.get_attribute_value(a) for a in last.attribute}
    if (attrs.get("mode", b"nearest") != b"linear" or "axes" in attrs
            or attrs.get("coordinate_transformation_mode", b"half_pixel") not in PER_AXIS_MAPPINGS
            or attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch"):
        return None
    inferred = onnx.shape_inference.infer_shapes(core, data_prop=True).graph   # the sizes a Concat of Shapes gives
    dims = {v.name: _dims(v) for v in (*inferred.value_info, *inferred.output)}
    small, full = dims.get(last.input[0], []), dims.get(last.output[0], [])
    if len(small) != 4 or len(full) != 4 or full[2:] != [height, width]:
        return None
    if not all(isinstance(d, int) and d > 0 for d in small[2:]) or height % small[2] or width % small[3]:
        return None
    factors = [height // small[2], width // small[3]]
    if factors == [1, 1]:
        return None       # nothing to upsample: the tail would transpose full-size logits
    given = {i.name: i for i in graph.initializer}.get(last.input[2] if len(last.input) > 2 else "")
    if given is not None and numpy_helper.to_array(given).tolist() != [1.0, 1.0, *map(float, factors)]:
        return None       # scales drive the coordinate mapping: only these are the same as the sizes
    if given is None and len(last.input) > 2 and last.input[2] and not (len(last.input) > 3 and last.input[3]):
        return None       # scales computed at run time
    return last, [float(f) for f in factors]


def without_dead_nodes(nodes: list[onnx.NodeProto], needed: set[str]) -> list[onnx.NodeProto]:
    """`nodes` less those whose outputs nothing else uses and `needed` does not name (here what computed the sizes
    of a Resize taken out; the quantizer's DequantizeLinears left without a reader), in their order."""
    kept = list(nodes)
    while True:
        used = needed | {t for n in kept for t in n.input}
        alive = [n for n in kept if any(out in used for out in n.output)]
        if len(alive) == len(kept):
            return kept
        kept = alive


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
    clash = taken & ({INPUT, LABELS, CONFIDENCE, PREFIX + "scale"} | ({LOGITS} if logits else set())) - {core_out}
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
    ]
    upsampling = _final_upsampling(core, height, width)
    opset = next((o.version for o in core.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ValueError(f"the core's ONNX opset is {opset or 'missing'}; the head and tail need 13 or later "
                         "(axes as inputs): re-export the network")
    if upsampling is None:
        class_axis = 1
        constants += [numpy_helper.from_array(np.ones((1, num_classes, 1, 1), np.float32), PREFIX + "ones"),
                      numpy_helper.from_array(np.array([class_axis], np.int64), PREFIX + "class_axis")]
    else:
        class_axis = 3
        constants.append(numpy_helper.from_array(np.array([1.0, *upsampling[1], 1.0], np.float32),
                                                 PREFIX + "nhwc_scales"))
        if opset >= 18:   # ReduceMax's axes became an input
            constants.append(numpy_helper.from_array(np.array([class_axis], np.int64), PREFIX + "class_axis"))

    def node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
        return helper.make_node(op, inputs, [output], name=PREFIX + output.removeprefix(PREFIX), **attrs)

    t = PREFIX
    head = [node("Cast", [INPUT], t + "float", to=TensorProto.FLOAT),
            node("Transpose", [t + "float"], t + "nchw", perm=[0, 3, 1, 2]),
            node("BatchNormalization", [t + "nchw", t + "scale", t + "offset", t + "zero_mean", t + "unit_variance"],
                 core_in, epsilon=0.0)]
    core_nodes, core_initializers, scores, nhwc = list(graph.node), list(graph.initializer), core_out, []
    if upsampling is not None:   # the Resize moves into the tail; what only it needed goes
        resize, scores = upsampling[0], t + "logits_nhwc"
        core_nodes = without_dead_nodes([n for n in core_nodes if n is not resize], {resize.input[0]})
        used = {name for n in core_nodes for name in n.input}
        core_initializers = [i for i in core_initializers if i.name in used]
        nhwc = [node("Transpose", [resize.input[0]], t + "small_logits_nhwc", perm=[0, 2, 3, 1]),
                node("Resize", [t + "small_logits_nhwc", "", t + "nhwc_scales"], scores)]
        nhwc[-1].attribute.extend(resize.attribute)
    labels = [node("ArgMax", [scores], t + "argmax", axis=class_axis, keepdims=0),
              node("Gather", [t + "class_table", t + "argmax"], t + "label_float", axis=0),
              node("Cast", [t + "label_float"], LABELS, to=TensorProto.UINT8)]
    if upsampling is None:   # NCHW: no reduction over the class axis but the ArgMax (module docstring)
        confidence = [
            node("Unsqueeze", [t + "argmax", t + "class_axis"], t + "argmax_nchw"),
            node("GatherElements", [scores, t + "argmax_nchw"], t + "peak", axis=class_axis),
            node("Sub", [scores, t + "peak"], t + "shifted"),
            node("Exp", [t + "shifted"], t + "exp"),
            node("Conv", [t + "exp", t + "ones"], t + "partition"),
            node("Squeeze", [t + "partition", t + "class_axis"], t + "partition_nhw"),
            node("Div", [t + "255", t + "partition_nhw"], t + "confidence_float")]
    else:                    # NHWC: the class axis is the contiguous last one, where Softmax is one pass
        confidence = [node("Softmax", [scores], t + "probabilities", axis=class_axis),
                      node("ReduceMax", [t + "probabilities", t + "class_axis"], t + "peak", keepdims=0)
                      if opset >= 18 else
                      node("ReduceMax", [t + "probabilities"], t + "peak", axes=[class_axis], keepdims=0),
                      node("Mul", [t + "peak", t + "255"], t + "confidence_float")]
    tail = nhwc + labels + confidence + [node("Cast", [t + "confidence_float"], CONFIDENCE, to=TensorProto.UINT8)]
    outputs = [helper.make_tensor_value_info(name, TensorProto.UINT8, [batch, height, width])
               for name in (LABELS, CONFIDENCE)]
    if logits:   # NCHW as the core gave them (a full-size transpose, in this evaluation graph only)
        if upsampling is not None:   # the core's Resize, which made core_out, is gone
            tail.append(node("Transpose", [scores], LOGITS, perm=[0, 3, 1, 2]))
        elif core_out != LOGITS:
            tail.append(node("Identity", [core_out], LOGITS))
        outputs.append(helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, [batch, num_classes, height, width]))
    composed = helper.make_graph(
        head + core_nodes + tail, graph.name or "bisegunet",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [batch, height, width, 3])],
        outputs, core_initializers + constants)
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
    initializers = {i.name: i for i in graph.initializer}
    logits, extra = argmax[0].input[0], []
    nhwc = [n for n in io_nodes if n.op_type == "Resize"]
    if nhwc:   # the tail upsampled in NHWC: give the network its NCHW Resize back
        producer = {out: n for n in io_nodes for out in n.output}
        small = producer[nhwc[0].input[0]].input[0]
        scales = numpy_helper.to_array(initializers[nhwc[0].input[2]])[[0, 3, 1, 2]]
        taken = {t for n in core_nodes for t in (*n.input, *n.output)}
        logits = LOGITS if LOGITS not in taken else small + "_upsampled"
        extra = [numpy_helper.from_array(scales.astype(np.float32), logits + "_scales")]
        resize = helper.make_node("Resize", [small, "", logits + "_scales"], [logits], name=logits + "_upsampling")
        resize.attribute.extend(nhwc[0].attribute)
        core_nodes.append(resize)
    used = {t for n in core_nodes for t in n.input}
    pixels = next(i for i in graph.input if i.name == INPUT)
    batch, height, width, _ = _dims(pixels)
    num_classes = len(numpy_helper.to_array(initializers[PREFIX + "class_table"]))
    core = helper.make_graph(
        core_nodes, graph.name,
        [helper.make_tensor_value_info(core_inputs.pop(), TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [batch, num_classes, height, width])],
        [i for i in graph.initializer if i.name in used] + extra)
    result = helper.make_model(core, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    result.ir_version = model.ir_version
    return result
