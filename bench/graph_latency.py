"""ONNX Runtime CPU latency of `bisegunet-export`'s graphs of trained checkpoints, interleaved in one process.

On a shared machine the load changes from minute to minute; timing model A for a minute and then
model B compares two loads, not two models. Here every repetition times each model once, in an
order rotated by one each repetition, so that each model sees the same load on average, and the
machine's load average is recorded before and after. Ratios between models of one run are what
to read; absolute milliseconds carry the load.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from bisegunet_ros.backends import load_backend
from bisegunet_training.export import export_onnx, model_from_checkpoint, model_info
from bisegunet_training.model import binary_layers

WARMUP = 3


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the cores were around a measurement)."""
    return [round(v, 2) for v in os.getloadavg()]


def export_model(model: torch.nn.Module, state: dict, path: Path, height: int, width: int) -> Path:
    """The graph the runtime runs (uint8 pixels in, labels and confidence out) at one fixed size; `state`:
    the checkpoint's fields that export reads."""
    binarized = any(layer.binarized for _, layer in binary_layers(model))
    export_onnx(model, path, height, width, model_info(state, height, width, binarized, False), tensorrt_check=False)
    return path


def export_checkpoint(checkpoint: str | Path, path: Path, height: int, width: int) -> Path:
    return export_model(*model_from_checkpoint(checkpoint), path, height, width)


def interleaved_latency(graphs: dict[str, Path], repetitions: int) -> dict:
    """Median, min and max ms of one batch-1 call per graph over `repetitions` interleaved rounds."""
    backends = {key: load_backend(path, "onnxruntime") for key, path in graphs.items()}
    frames = {key: np.random.default_rng(0).integers(
        0, 256, (1, b.info.input_height, b.info.input_width, 3), dtype=np.uint8) for key, b in backends.items()}
    for key, backend in backends.items():
        for _ in range(WARMUP):
            backend.infer(frames[key])
    before = load_average()
    times: dict[str, list[float]] = {key: [] for key in backends}
    keys = list(backends)
    for rep in range(repetitions):
        for key in keys[rep % len(keys):] + keys[:rep % len(keys)]:
            t0 = time.perf_counter()
            backends[key].infer(frames[key])
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {"load_average_before": before, "load_average_after": load_average(), "repetitions": repetitions,
            "warmup": WARMUP,
            "ms": {key: {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v)),
                         "values": [round(x, 2) for x in v]} for key, v in times.items()}}
