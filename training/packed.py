"""Packed 1-bit weights: the storage saving of a binary network, made real.

A binarized conv is stored as np.packbits of its signs (1 bit per weight) plus one float32
log(alpha) per output channel; everything else (float layers, BatchNorm statistics, biases) as
float32. Loading rebuilds a model whose outputs are identical to the original's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .model import binary_layers, build_model, model_config_from_dict

SIGNS, SHAPE, LOG_ALPHA = ".__signs", ".__shape", ".__log_alpha"


def save_packed(model: torch.nn.Module, state: dict, path: str | Path) -> Path:
    """Write the packed .npz; `state` is the checkpoint (for config, data contract and provenance)."""
    arrays, packed_names = {}, set()
    for name, layer in binary_layers(model):
        if layer.binarized:
            w = layer._latent().detach()
            arrays[name + SIGNS] = np.packbits((w >= 0).numpy().ravel())
            arrays[name + SHAPE] = np.asarray(w.shape, np.int64)
            arrays[name + LOG_ALPHA] = layer.log_alpha.detach().numpy()  # log: bit-exact on reload
            packed_names |= {f"{name}.weight", f"{name}.log_alpha"}
    for key, tensor in model.state_dict().items():
        if key not in packed_names:
            arrays[key] = tensor.detach().numpy()
    meta = {k: state[k] for k in ("model_config", "data", "command", "commit") if k in state}
    meta["binarized"] = {n: bool(layer.binarized) for n, layer in binary_layers(model)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)   # uncompressed: the size is the bits, not what zlib makes of them
    return path


def load_packed(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The model rebuilt from a packed file (eval mode) and its metadata."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    model = build_model(model_config_from_dict(meta["model_config"]))
    state = {}
    for name, layer in binary_layers(model):
        if name + SIGNS in arrays:
            shape = tuple(arrays.pop(name + SHAPE))
            bits = np.unpackbits(arrays.pop(name + SIGNS))[: int(np.prod(shape))].reshape(shape)
            state[f"{name}.weight"] = torch.from_numpy(bits.astype(np.float32) * 2 - 1)  # +-1 latent: same signs
            state[f"{name}.log_alpha"] = torch.from_numpy(arrays.pop(name + LOG_ALPHA))
            layer.standardize = False      # the stored signs are already those of the standardized weights
    state.update({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
    model.load_state_dict(state)
    for name, layer in binary_layers(model):
        layer.binarized = meta["binarized"][name]
    return model.eval(), meta


def fp32_bytes(model: torch.nn.Module) -> int:
    """Size of the model's parameters and buffers as float32."""
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())
