"""`init_from`: start a model from a checkpoint's weights where name and shape match.

For fine-tuning on another class set or dataset: the classifier head of a model with another
number of classes does not match and keeps its fresh initialisation; everything else is loaded.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy every tensor of the checkpoint at `path` whose name and shape match into `model`.

    Returns (loaded names, names of `model` left as initialised); logs both. Raises ValueError
    when nothing matches (another architecture), naming the checkpoint.
    """
    source = load_checkpoint(path)["model"]
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
