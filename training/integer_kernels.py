"""Reshape a float graph's convolutions, before CPU quantization, into ones ONNX Runtime's fast integer kernel takes.

ONNX Runtime's QLinearConv has two x86 paths (MLAS, onnxruntime/core/mlas/lib/convsym.cpp and
providers/cpu/quantization/qlinearconv.cc). The symmetric-weight kernel ("ConvSym") reads the uint8 input in
place through an indirection buffer and requantizes as it goes; MlasConvSymPackWSize grants it to an
ungrouped convolution with int8 weights of zero point 0 (this project's CPU model has them), at least
FilterOutputChannelPackCount (16) output channels, input channels a multiple of 4 and output channels a
multiple of 4 (AVX-512) or 8 (AVX2). Other convolutions but depthwise and 1x1 ones copy C_in x k x k
bytes per output pixel (im2col) for a GEMM with an int32 result: a 7x7 convolution with 6 outputs ran
slower than its float NCHWc kernel that way, and with 16 outputs three times faster the ConvSym way
(docs/backends.md). BiSegUNet's Capacity Blocks split their width over four branches, so its narrow
layers (6 to 12 outputs in `small`'s full-resolution blocks) and its grouped 3x3 branches missed that
kernel. Hence, on the float graph, the same function computed wider:
- a grouped convolution (not depthwise, at most MAX_UNGROUPED groups) becomes an ungrouped one with
  block-diagonal weights: `group` times the multiply-adds, each far cheaper (measured for groups 2
  and 4);
- a convolution with output channels short of the kernel's conditions gets zero filters (bias 0) up to
  the next multiple of OUTPUT_CHANNEL_MULTIPLE, at least MIN_OUTPUT_CHANNELS; a ReLU that is its only
  reader keeps the added channels zero. A convolution this function rewrites that reads the result
  (as its input 0) reads all of it, its weights given zero input channels to match; any other reader
  gets a Slice of the real channels.
The added channels are exactly zero in float and after quantization (zero weights and bias), so the
widened float graph computes what the original did and quantization sees the same function.
Tuned and measured on x86 (AVX-512 VNNI). MLAS's ARM64 build gates that kernel differently (by input
channels and kernel size), so there the widening is not known to pay; the vehicle runs TensorRT.
"""
from __future__ import annotations

import logging
from collections.abc import Collection

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .uint8_graph import without_dead_nodes

log = logging.getLogger(__name__)
PREFIX = "integer_kernels/"
MIN_OUTPUT_CHANNELS = 16       # MLAS FilterOutputChannelPackCount, every x86 ConvSym dispatch
OUTPUT_CHANNEL_MULTIPLE = 8    # KernelOutputChannelAlignment: 4 on AVX-512, 8 on AVX2 / AVX-VNNI
INPUT_CHANNEL_MULTIPLE = 4     # KernelInputChannelAlignment
MAX_UNGROUPED = 4              # groups ungrouped at most: the multiply-adds grow by the group count


def attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    """An integer attribute of `node`, or `default` where it has none (ONNX's own defaults: group 1)."""
    return next((a.i for a in node.attribute if a.name == name), default)


def constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """The initializers by every name they go by: torch's exporter gives an initializer equal to an
    earlier one (an untrained network's all-zero folded biases) as an Identity of that one."""
    found = {i.name: i for i in graph.initializer}
    for node in graph.node:             # topological order: an Identity's input is named before it
        if node.op_type == "Identity" and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


def wide_channels(channels: int) -> int:
    """The output width the ConvSym kernel takes for a convolution of `channels` outputs."""
    return max(MIN_OUTPUT_CHANNELS, -(-channels // OUTPUT_CHANNEL_MULTIPLE) * OUTPUT_CHANNEL_MULTIPLE)


def _dense(weight: np.ndarray, group: int) -> np.ndarray:
    """The ungrouped weights of a grouped convolution: group g's filters see only input channels of group g."""
    out_channels, group_in = weight.shape[:2]
    per_group = out_channels // group
    dense = np.zeros((out_channels, group_in * group, *weight.shape[2:]), weight.dtype)
    for g in range(group):
        rows = slice(g * per_group, (g + 1) * per_group)
        dense[rows, g * group_in:(g + 1) * group_in] = weight[rows]
    return dense


def _padded(array: np.ndarray, size: int, axis: int) -> np.ndarray:
    """`array` with zeros appended along `axis` up to `size`."""
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, size - array.shape[axis])
    return np.pad(array, widths)


def widen_convolutions(graph: onnx.GraphProto, excluded: Collection[str] = ()) -> list[str]:
    """Rewrite `graph` in place as the module docstring says; convolutions named in `excluded` (the float
    head and tail) and those without constant weights are left alone, and so is a graph with subgraphs
    (If, Loop: not walked). Returns the names of the convolutions changed. Stale shapes are dropped from
    value_info (run shape inference after)."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        log.warning("graph has subgraphs: convolutions not widened for ONNX Runtime's integer kernel")
        return []
    weights = constants(graph)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def rewritable(node: onnx.NodeProto) -> bool:
        """A convolution with constant weights (and bias), ungrouped or ungroupable, not excluded."""
        if node.op_type != "Conv" or node.name in excluded or node.input[1] not in weights:
            return False
        if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
            return False
        group = attribute(node, "group", 1)
        return group == 1 or (group <= MAX_UNGROUPED and weights[node.input[1]].dims[1] > 1)   # not depthwise

    def reads_wide(reader: onnx.NodeProto, tensor: str) -> bool:
        return rewritable(reader) and reader.input[0] == tensor and tensor not in reader.input[1:]

    widened: dict[str, tuple[str, int]] = {}     # tensor -> (its wide tensor, wide channels)
    added: list[onnx.TensorProto] = []
    slices: dict[str, onnx.NodeProto] = {}       # wide tensor -> the Slice of its real channels
    changed: list[str] = []

    def constant(name: str, array: np.ndarray) -> str:
        added.append(numpy_helper.from_array(array, PREFIX + name))
        return PREFIX + name

    for node in graph.node:          # topological order: a convolution's producer is rewritten first
        if not rewritable(node):
            continue
        weight = original = numpy_helper.to_array(weights[node.input[1]])
        group = attribute(node, "group", 1)
        wide_input = widened.get(node.input[0])
        if group > 1:
            if wide_input is None and (weight.shape[1] * group) % INPUT_CHANNEL_MULTIPLE:
                continue             # ungrouped it would still miss the kernel: only more multiply-adds
            weight = _dense(weight, group)
            next(a for a in node.attribute if a.name == "group").i = 1
        if wide_input is not None:
            node.input[0] = wide_input[0]
            weight = _padded(weight, wide_input[1], axis=1)
        out_channels, in_channels = weight.shape[:2]
        wide = wide_channels(out_channels)
        name = node.output[0]        # unique, where node names may be empty or repeated
        if in_channels % INPUT_CHANNEL_MULTIPLE == 0 and wide != out_channels:
            weight = _padded(weight, wide, axis=0)
            bias = numpy_helper.to_array(weights[node.input[2]]) if len(node.input) > 2 and node.input[2] \
                else np.zeros(out_channels, weight.dtype)
            if len(node.input) < 3:
                node.input.append("")
            node.input[2] = constant(f"{name}/bias", _padded(bias, wide, axis=0))
            conv_readers = readers.get(name, [])
            last = conv_readers[0] if len(conv_readers) == 1 and conv_readers[0].op_type == "Relu" \
                and name not in outputs else node
            tensor = last.output[0]
            last.output[0] = PREFIX + tensor
            widened[tensor] = (last.output[0], wide)
            if tensor in outputs or not all(reads_wide(r, tensor) for r in readers.get(tensor, [])):
                # a convolution among the readers still reads the wide tensor (rewired when its turn comes)
                slices[last.output[0]] = helper.make_node(
                    "Slice", [last.output[0], constant(f"{tensor}/starts", np.array([0], np.int64)),
                              constant(f"{tensor}/ends", np.array([out_channels], np.int64)),
                              constant(f"{tensor}/axes", np.array([1], np.int64))],
                    [tensor], name=f"{PREFIX}{tensor}/slice")
        if weight is not original:
            node.input[1] = constant(f"{name}/weight", weight)
            changed.append(node.name)
    nodes = []
    for node in graph.node:
        nodes.append(node)
        nodes.extend(slices[o] for o in node.output if o in slices)
    del graph.node[:]
    graph.node.extend(without_dead_nodes(nodes, outputs))   # Identities of weights replaced
    graph.initializer.extend(added)
    used = {name for node in graph.node for name in node.input}
    for tensor in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(tensor)
    del graph.value_info[:]
    return changed
