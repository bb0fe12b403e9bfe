"""`init_from`: start a model from a checkpoint's weights, or an exported model's, where name and shape match.

For fine-tuning on another class set or dataset: the classifier head of a model with another
number of classes does not match and keeps its fresh initialisation; everything else is loaded.
A `.pt` is a checkpoint of bisegunet-train; anything else is an ONNX model of bisegunet-export
(a path or a shipped name such as bisegunet_fast), so the shipped model is a starting point
without its checkpoint: its float initialisers carry the torch names (onnx_state).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from bisegunet_ros.model_info import ModelInfo
from bisegunet_ros.resources import find_resource

from .checkpoint import load_checkpoint
from .model import BinaryConv2d

log = logging.getLogger(__name__)


def onnx_state(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict for `model` from the initialisers of an exported (folded) ONNX model.

    Export folded each BatchNorm into the convolution before it and each binary weight to
    sign * alpha (fold.py); this undoes it in a way that computes the same function: the
    convolution takes the folded weight, its BatchNorm becomes the identity plus the folded
    bias, and a binary layer's alpha is its weight's magnitude per output channel (the folded
    weight has one magnitude per channel, so sign * alpha gives it back exactly).
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf raises its own DecodeError for foreign files
        raise ValueError(f"init_from {path}: not a loadable ONNX model ({exc})") from exc
    source = {i.name: torch.from_numpy(np.array(numpy_helper.to_array(i))) for i in graph.initializer}
    state = {}
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, child), (next_name, following) in zip(children, children[1:] + [(None, None)]):
            prefix = f"{parent_name}.{name}" if parent_name else name
            if not isinstance(child, nn.Conv2d) or f"{prefix}.weight" not in source:
                continue
            weight, bias = source[f"{prefix}.weight"], source.get(f"{prefix}.bias")
            state[f"{prefix}.weight"] = weight
            if isinstance(child, BinaryConv2d):
                state[f"{prefix}.log_alpha"] = weight.abs().mean(dim=(1, 2, 3)).clamp_min(1e-8).log()
                state[f"{prefix}.alpha_initialized"] = torch.tensor(True)
            if isinstance(following, nn.BatchNorm2d) and bias is not None:
                bn = f"{parent_name}.{next_name}" if parent_name else next_name
                state.update({f"{bn}.weight": torch.ones_like(bias), f"{bn}.bias": bias,
                              f"{bn}.running_mean": torch.zeros_like(bias),
                              f"{bn}.running_var": torch.full_like(bias, 1 - following.eps),
                              f"{bn}.num_batches_tracked": torch.tensor(0)})
            elif child.bias is not None and bias is not None:
                state[f"{prefix}.bias"] = bias
    own = model.state_dict()
    state.update({k: v for k, v in source.items() if k in own and k not in state})  # e.g. attention.gate
    return state


def source_weights(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors `init_from` offers: a checkpoint's state_dict, or what an exported model gives back."""
    if Path(path).suffix == ".pt":
        return load_checkpoint(path)["model"]
    onnx_path = find_resource("model", path)
    info = ModelInfo.from_onnx(onnx_path)
    preset = getattr(getattr(model, "cfg", None), "name", "")
    if info.preset and preset and info.preset != preset:
        log.warning("init_from %s: exported from preset %r, this model is %r; only matching tensors load",
                    path, info.preset, preset)
    return onnx_state(model, onnx_path)


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy every tensor of the checkpoint or ONNX model at `path` whose name and shape match into `model`.

    Returns (loaded names, names of `model` left as initialised); logs both. Raises ValueError
    when nothing matches (another architecture), naming the file.
    """
    source = source_weights(model, path)
    own = model.state_dict()
    matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"init_from {path}: no weight matches this model by name and shape (another architecture?)")
    model.load_state_dict(matching, strict=False)
    kept = [k for k in own if k not in matching]
    log.info("init_from %s: loaded %d of %d tensors", path, len(matching), len(own))
    if kept:
        shapes = ", ".join(f"{k} {tuple(own[k].shape)}" +
                           (f" (checkpoint {tuple(source[k].shape)})" if k in source else "") for k in kept)
        log.info("init_from %s: re-initialised (no match in the checkpoint): %s", path, shapes)
    unused = [k for k in source if k not in own]
    if unused:
        log.info("init_from %s: not in this model: %s", path, ", ".join(unused))
    return list(matching), kept
