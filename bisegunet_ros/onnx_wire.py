"""A serialised ONNX model read and pruned at the protobuf wire level: the runtime has no `onnx` package.

Two uses: the metadata (model_info.py reads it) and a copy of the model without one output and
the nodes that only it needs (the ONNX Runtime backend runs that labels-only graph while nobody
asks for the confidence, since ONNX Runtime computes every node whatever outputs are fetched).
Field numbers are onnx.proto's; fields are copied byte for byte, so the pruned model is the same
model less the dropped entries.
"""
from __future__ import annotations

from collections.abc import Iterator

METADATA_PROPS_FIELD = 14   # ModelProto.metadata_props; entries: key = 1, value = 2
MODEL_GRAPH = 7             # ModelProto.graph
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
NODE_INPUT, NODE_OUTPUT, NODE_ATTRIBUTE = 1, 2, 5
ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS = 6, 11   # AttributeProto.g, .graphs: subgraphs (If, Loop, Scan)
VALUE_INFO_NAME, TENSOR_NAME = 1, 8         # ValueInfoProto.name, TensorProto.name
LENGTH_DELIMITED = 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def fields(data: bytes) -> Iterator[tuple[int, int, bytes | int, bytes]]:
    """(field number, wire type, value, the field's own bytes) of one protobuf message;
    length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == LENGTH_DELIMITED:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated protobuf field")
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos:pos + width], pos + width
        else:
            raise ValueError(f"protobuf wire type {wire} is not valid in an ONNX file")
        yield number, wire, value, data[start:pos]


def _strings(message: bytes, number: int) -> list[str]:
    return [value.decode() for n, w, value, _ in fields(message) if n == number and w == LENGTH_DELIMITED]


def metadata_props(data: bytes) -> dict[str, str]:
    """metadata_props of a serialised ONNX ModelProto."""
    props = {}
    for number, wire, value, _ in fields(data):
        if number == METADATA_PROPS_FIELD and wire == LENGTH_DELIMITED:
            entry = {n: v.decode() for n, w, v, _ in fields(value) if w == LENGTH_DELIMITED}
            props[entry.get(1, "")] = entry.get(2, "")
    return props


def _prune_graph(graph: bytes, output: str) -> bytes | None:
    """The GraphProto without `output`, the nodes no remaining output needs and their unused
    initializers; None when the graph has no such output or holds subgraphs (whose implicit
    inputs this reader does not follow)."""
    entries = list(fields(graph))
    outputs = [(_strings(value, VALUE_INFO_NAME) or [""])[0] for n, _, value, _ in entries if n == GRAPH_OUTPUT]
    if output not in outputs:
        return None
    needed = set(outputs) - {output}
    keep = [True] * len(entries)
    for i in reversed(range(len(entries))):        # nodes are stored in topological order
        number, _, value, _ = entries[i]
        if number != GRAPH_NODE:
            continue
        attributes = [a for n, _, a, _ in fields(value) if n == NODE_ATTRIBUTE]
        if any(n in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS) for a in attributes for n, *_ in fields(a)):
            return None
        keep[i] = bool(needed & set(_strings(value, NODE_OUTPUT)))
        if keep[i]:
            needed |= set(_strings(value, NODE_INPUT))
    dropped_initializers = set()
    for i, (number, _, value, _) in enumerate(entries):
        if number == GRAPH_OUTPUT:
            keep[i] = _strings(value, VALUE_INFO_NAME)[0] != output
        elif number == GRAPH_INITIALIZER:
            name = _strings(value, TENSOR_NAME)[0]
            keep[i] = name in needed
            dropped_initializers |= set() if keep[i] else {name}
        elif number == GRAPH_VALUE_INFO:
            keep[i] = _strings(value, VALUE_INFO_NAME)[0] in needed
    for i, (number, _, value, _) in enumerate(entries):
        if number == GRAPH_INPUT:   # before IR 4 initializers are listed as inputs too
            keep[i] = _strings(value, VALUE_INFO_NAME)[0] not in dropped_initializers
    return b"".join(raw for (_, _, _, raw), kept in zip(entries, keep) if kept)


def without_output(model: bytes, output: str) -> bytes | None:
    """The serialised model less `output` and every node and initializer only it needs; None where
    that cannot be done (no such output, subgraphs), so the caller runs the whole model."""
    parts = []
    for number, wire, value, raw in fields(model):
        if number == MODEL_GRAPH and wire == LENGTH_DELIMITED:
            graph = _prune_graph(value, output)
            if graph is None:
                return None
            raw = _encode_varint(MODEL_GRAPH << 3 | LENGTH_DELIMITED) + _encode_varint(len(graph)) + graph
        parts.append(raw)
    return b"".join(parts)
