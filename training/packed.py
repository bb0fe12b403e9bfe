"""Packed 1-bit weights: the storage saving of a binary network, made real in one small file.

Layout (little-endian): MAGIC (8 bytes) | header length (uint32) | header | payload.
The header is zlib-compressed JSON: the checkpoint's model config, data contract and provenance,
and an index [name, dtype, shape, offset] per state-dict tensor. The payload is one contiguous
buffer: a binarized conv's weight as np.packbits of its signs (dtype "bits", 1 bit per weight,
padded to a whole byte), everything else (log(alpha), float layers, BatchNorm statistics, biases)
in its own dtype. Only the header is compressed (its names repeat); the bits are stored as they
are. Loading rebuilds a model whose outputs are identical to the original's.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .model import binary_layers, build_model, model_config_from_dict

MAGIC = b"BSGPACK1"
BITS = "bits"


class PackedError(ValueError):
    """A file that is not a readable packed model."""


def save_packed(model: torch.nn.Module, state: dict, path: str | Path) -> Path:
    """Write the packed file; `state` is the checkpoint (for config, data contract and provenance)."""
    signs = {f"{name}.weight": layer.binary_weight().detach() >= 0
             for name, layer in binary_layers(model) if layer.binarized}
    index, chunks, offset = [], [], 0
    for key, tensor in model.state_dict().items():
        if key in signs:
            dtype, shape, raw = BITS, list(tensor.shape), np.packbits(signs[key].cpu().numpy().ravel()).tobytes()
        else:
            array = np.ascontiguousarray(tensor.detach().cpu().numpy())
            dtype, shape, raw = array.dtype.name, list(array.shape), array.tobytes()
        index.append([key, dtype, shape, offset])
        chunks.append(raw)
        offset += len(raw)
    meta = {k: state[k] for k in ("model_config", "data", "command", "commit") if k in state}
    meta["binarized"] = {n: bool(layer.binarized) for n, layer in binary_layers(model)}
    header = zlib.compress(json.dumps({"meta": meta, "index": index}, separators=(",", ":")).encode(), 9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MAGIC + struct.pack("<I", len(header)) + header + b"".join(chunks))
    return path


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Metadata and state dict (binary weights as +-1) of a packed file; PackedError naming it otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackedError(f"{path}: cannot read packed model ({exc.strerror})") from exc
    if raw[:len(MAGIC)] != MAGIC:
        raise PackedError(f"{path}: not a packed BiSegUNet model (no {MAGIC.decode()} header)")
    try:
        (length,) = struct.unpack_from("<I", raw, len(MAGIC))
        start = len(MAGIC) + 4
        header = json.loads(zlib.decompress(raw[start:start + length]))
        payload = memoryview(raw)[start + length:]
        state = {}
        for name, dtype, shape, offset in header["index"]:
            count = math.prod(shape)
            if dtype == BITS:
                bits = np.unpackbits(np.frombuffer(payload, np.uint8, (count + 7) // 8, offset))[:count]
                state[name] = torch.from_numpy(bits.reshape(shape).astype(np.float32) * 2 - 1)   # +-1: same signs
            else:
                array = np.frombuffer(payload, np.dtype(dtype), count, offset)
                state[name] = torch.from_numpy(array.reshape(shape).copy())
    except (struct.error, zlib.error, ValueError, KeyError, TypeError) as exc:
        raise PackedError(f"{path}: truncated or corrupt packed model ({exc})") from exc
    return header["meta"], state


def load_packed(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The model rebuilt from a packed file (eval mode) and its metadata."""
    meta, state = _read(Path(path))
    model = build_model(model_config_from_dict(meta["model_config"]))
    for name, layer in binary_layers(model):
        if meta["binarized"][name]:
            layer.standardize = False      # the stored signs are already those of the standardized weights
    model.load_state_dict(state)
    for name, layer in binary_layers(model):
        layer.binarized = meta["binarized"][name]
    return model.eval(), meta


def fp32_bytes(model: torch.nn.Module) -> int:
    """Size of the model's parameters and buffers as float32."""
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())
