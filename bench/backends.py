"""Backend latency on this CPU: ONNX Runtime FP32 and INT8 at three sizes, against the machine's GEMM rate.

    python -m bench.backends [--packed models/bisegunet_tiny.packed.bin] [--runs 30]

The shipped tiny model at three sizes and the small preset at 512x1024 are exported at that
size, quantized to INT8, and each is timed over --runs calls after warm-up (median, p90). The
achieved FLOP rate (real FLOPs / median latency) is compared with numpy's FP32 GEMM rate measured
in the same run. INT8 accuracy: mIoU of the shipped model, FP32 vs INT8, on synthetic scenes.
Writes bench/backends.json and bench/backends.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.machine import describe, fp32_gemm_gflops, markdown_header, write_results
from bisegunet_ros.backends import load_backend
from bisegunet_ros.metrics import ConfusionMatrix
from bisegunet_ros.pipeline import SegmentationPipeline
from bisegunet_training.data import render_scene
from bisegunet_training.export import export_onnx, model_info
from bisegunet_training.model import (binary_layers, build_model, load_model_config, model_config_from_dict,
                                      set_binarized)
from bisegunet_training.packed import load_packed
from bisegunet_training.profile import profile
from bisegunet_training.quantize import quantize

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(256, 512), (512, 1024), (1024, 2048)]
EVAL_SEED, EVAL_FRAMES = 8_000_009, 50


def timed(backend, height: int, width: int, runs: int) -> dict:
    batch = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    for _ in range(3):
        backend.infer(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.infer(batch)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def random_state(preset: str) -> tuple[torch.nn.Module, dict]:
    """Untrained weights: latency does not depend on their values."""
    cfg = load_model_config(preset)
    model = build_model(cfg).eval()
    set_binarized(model, True)
    from bisegunet_ros.classes import CITYSCAPES

    return model, {"model_config": asdict(cfg), "data": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                                       "class_names": list(CITYSCAPES.names)}}


def miou(onnx_path: Path, height: int, width: int) -> float:
    pipeline = SegmentationPipeline(load_backend(onnx_path, "onnxruntime"), output_resolution="network")
    matrix = ConfusionMatrix(len(pipeline.classes))
    for i in range(EVAL_FRAMES):
        rgb, label = render_scene(EVAL_SEED, i, height, width)
        matrix.update(label, pipeline.run([rgb])[0].labels)
    return matrix.summary()["miou"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packed", type=Path, default=ROOT / "models/bisegunet_tiny.packed.bin")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    machine = describe()
    gemm = fp32_gemm_gflops()
    rows = []
    models = {"tiny (shipped)": load_packed(args.packed), "small": random_state("small")}
    sizes = {"tiny (shipped)": SIZES, "small": [(512, 1024)]}   # small at the size of the 70 % goal
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, state) in models.items():
            for height, width in sizes[label]:
                fp32 = Path(tmp) / f"{label.split()[0]}_{height}.onnx"
                layers = binary_layers(model)
                export_onnx(model, fp32, height, width, model_info({**state, "command": "", "commit": ""}, height,
                                                                   width, all(l.binarized for _, l in layers), False))
                int8 = quantize(fp32, fp32.with_suffix(".int8.onnx"), frames=16)
                gflops = profile(model_config_from_dict(state["model_config"]), height, width)["real_gflops"]
                for precision, path in (("fp32", fp32), ("int8", int8)):
                    result = timed(load_backend(path, "onnxruntime"), height, width, args.runs)
                    rows.append({"model": label, "size": f"{height}x{width}", "precision": precision,
                                 "real_gflops": gflops, **result,
                                 "achieved_gflops": gflops / (result["median_ms"] / 1e3)})
                    print(rows[-1], flush=True)
        model, state = models["tiny (shipped)"]
        tiny_h, tiny_w = state["data"]["height"], state["data"]["width"]
        fp32 = Path(tmp) / "tiny_eval.onnx"
        export_onnx(model, fp32, tiny_h, tiny_w, model_info({**state, "command": "", "commit": ""}, tiny_h, tiny_w,
                                                            True, False))
        accuracy = {"size": f"{tiny_h}x{tiny_w}", "frames": EVAL_FRAMES, "fp32_miou": miou(fp32, tiny_h, tiny_w),
                    "int8_miou": miou(quantize(fp32, fp32.with_suffix(".int8.onnx")), tiny_h, tiny_w)}

    result = {"machine": machine, "fp32_gemm_gflops": gemm, "rows": rows, "int8_accuracy": accuracy}
    lines = markdown_header("Backend latency on this CPU", "python -m bench.backends", machine)
    lines += [f"numpy FP32 GEMM (1024x1024, all cores), measured in the same run: **{gemm:.0f} GFLOP/s**.", "",
              f"ONNX Runtime {machine['onnxruntime']}, CPU execution provider, batch 1, {args.runs} runs after "
              "3 warm-up; real FLOPs from bisegunet-profile.", "",
              "| model | input | precision | median ms | p90 ms | real GFLOPs | achieved GFLOP/s | of GEMM rate |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['precision']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['real_gflops']:.2f} | {r['achieved_gflops']:.1f} | {100 * r['achieved_gflops'] / gemm:.0f} % |")
    lines += ["", "INT8 vs FP32 speed-up (median latency ratio):", "",
              "| model | input | speed-up |", "|---|---|---|"]
    for f, i in zip(rows[::2], rows[1::2]):
        lines.append(f"| {f['model']} | {f['size']} | {f['median_ms'] / i['median_ms']:.2f}x |")
    lines += ["", f"INT8 accuracy, shipped tiny model on {EVAL_FRAMES} synthetic scenes at {accuracy['size']}: "
              f"FP32 mIoU {100 * accuracy['fp32_miou']:.2f} %, INT8 mIoU {100 * accuracy['int8_miou']:.2f} % "
              f"({100 * (accuracy['int8_miou'] - accuracy['fp32_miou']):+.2f} points).", "",
              "No GPU was available to this run; TensorRT timings need the vehicle (JetPack).", ""]
    print(write_results(ROOT / "bench/backends", result, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
