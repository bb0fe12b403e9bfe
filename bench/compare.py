"""BiSegUNet against torchvision's lightweight segmentation models: one command, one table.

    python -m bench.compare              # trains six models, then measures them (about 40 min on 2 cores)
    python -m bench.compare --smoke --out DIR   # the same path at toy sizes, in about a minute (CI)

Every model gets the same budget: the paper's recipe (config/train/tiny_synthetic.yaml:
synthetic street scenes, augmentation, loss, Adam and the phase-restarting cosine schedule) with
the same epochs x iterations x batch at the same resolution. BiSegUNet tiny and small run float
(binarize=false) and binarized (the three phases scaled to the budget); torchvision's LR-ASPP and
DeepLabV3 with MobileNetV3-Large are torchvision's architectures with random weights, trained here
from scratch, because no pretrained weights can be downloaded on this machine.

Then, with everything else idle: the best checkpoint is exported to ONNX and quantized to INT8,
both are scored on held-out scenes through the runtime's pipeline and metrics, and ONNX Runtime
latency is timed at each size, all in one process so that the ratios compare. Writes
OUT/RESULTS.md, OUT/RESULTS.json and OUT/miou_vs_latency.png (OUT = bench/ by default).
"""
from __future__ import annotations

import argparse
import gc
import logging
import math
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.backends import EVAL_SEED, timed
from bench.machine import describe, markdown_header, write_results
from bisegunet_ros.backends import load_backend
from bisegunet_ros.metrics import ConfusionMatrix
from bisegunet_ros.pipeline import SegmentationPipeline
from bisegunet_training.config import load_config
from bisegunet_training.data import render_scene
from bisegunet_training.export import export_onnx, model_from_checkpoint, model_info, unsupported_by_tensorrt
from bisegunet_training.model import binary_layers
from bisegunet_training.model.torchvision_models import import_torchvision
from bisegunet_training.profile import profile
from bisegunet_training.quantize import quantize
from bisegunet_training.schedule import PhaseSchedule
from bisegunet_training.train import Trainer
from bisegunet_training.train_config import TrainConfig

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/train/tiny_synthetic.yaml"
FLOPS_SIZE = (512, 1024)


@dataclass(frozen=True)
class Entry:
    key: str          # run name
    label: str        # row of the table, point of the plot
    model: str        # TrainConfig.model
    binarize: bool


ENTRIES = (
    Entry("compare_tiny_binary", "BiSegUNet tiny, binarized", "tiny", True),
    Entry("compare_tiny_float", "BiSegUNet tiny, float", "tiny", False),
    Entry("compare_small_binary", "BiSegUNet small, binarized", "small", True),
    Entry("compare_small_float", "BiSegUNet small, float", "small", False),
    Entry("compare_lraspp", "LR-ASPP MobileNetV3-Large", "torchvision:lraspp_mobilenet_v3_large", False),
    Entry("compare_deeplabv3", "DeepLabV3 MobileNetV3-Large", "torchvision:deeplabv3_mobilenet_v3_large", False),
)


@dataclass(frozen=True)
class Budget:
    """What every model gets: training (same for all), evaluation and timing."""

    height: int
    width: int
    epochs: int
    iters_per_epoch: int
    batch_size: int
    val_size: int                       # validation scenes (checkpoint choice)
    workers: int                        # DataLoader processes
    test_frames: int                    # held-out scenes scored through the runtime
    calibration_frames: int             # INT8 calibration of the scored model
    latency: tuple[tuple[int, int, int], ...]   # (height, width, timed runs) per size

    def overrides(self) -> list[str]:
        return [f"epochs={self.epochs}", f"iters_per_epoch={self.iters_per_epoch}", f"batch_size={self.batch_size}",
                f"data.height={self.height}", f"data.width={self.width}", f"data.val_size={self.val_size}",
                f"workers={self.workers}", "tensorboard=false"]


FULL = Budget(height=128, width=256, epochs=6, iters_per_epoch=18, batch_size=8, val_size=48, workers=2,
              test_frames=100, calibration_frames=32, latency=((512, 1024, 10), (1024, 2048, 3)))
SMOKE = Budget(height=32, width=64, epochs=3, iters_per_epoch=1, batch_size=2, val_size=2, workers=0,
               test_frames=2, calibration_frames=1, latency=((32, 64, 1), (64, 128, 1)))
LATENCY_CALIBRATION_FRAMES = 1   # INT8 models that are only timed: latency does not depend on the values


def train(entry: Entry, budget: Budget, runs: Path) -> dict:
    """Train one model in this process; the command that repeats it, its time and its best checkpoint."""
    overrides = [f"name={entry.key}", f"model={entry.model}", f"binarize={str(entry.binarize).lower()}",
                 *budget.overrides()]
    cfg = load_config(ROOT / CONFIG, TrainConfig, [*overrides, f"out_dir={runs}"])
    command = shlex.join(["bisegunet-train", "--config", CONFIG, *overrides])
    started = time.perf_counter()
    trainer = Trainer(cfg, command=command)
    trainer.fit()
    minutes = (time.perf_counter() - started) / 60
    del trainer            # its DataLoader workers go before the next model trains
    gc.collect()
    return {"command": command, "train_minutes": minutes, "checkpoint": str(runs / entry.key / "best.pt")}


def export_pair(model: torch.nn.Module, state: dict, binarized: bool, path: Path, height: int, width: int,
                calibration_frames: int) -> tuple[Path, Path, list[str]]:
    """FP32 and CPU INT8 ONNX at one size, and the graph's ops outside TensorRT's list (ONNX Runtime runs them all)."""
    proto = export_onnx(model, path, height, width, model_info(state, height, width, binarized, False),
                        tensorrt_check=False)
    int8 = quantize(path, path.with_suffix(".int8-cpu.onnx"), frames=calibration_frames, target="cpu")
    return path, int8, sorted(unsupported_by_tensorrt(proto))


def score(onnx_path: Path, frames: list) -> dict:
    """mIoU, mean Dice and pixel accuracy through the runtime's pipeline and metrics."""
    pipeline = SegmentationPipeline(load_backend(onnx_path, "onnxruntime"), output_resolution="network")
    matrix = ConfusionMatrix(len(pipeline.classes))
    for rgb, label in frames:
        matrix.update(label, pipeline.run([rgb])[0].labels)
    summary = matrix.summary()
    return {k: summary[k] for k in ("miou", "mean_dice", "pixel_accuracy")}


def measure(entry: Entry, trained: dict, budget: Budget, frames: list, work: Path) -> dict:
    """Accuracy (FP32 and INT8), size, FLOPs and latency of one trained model."""
    model, state = model_from_checkpoint(trained["checkpoint"])
    binarized = any(layer.binarized for _, layer in binary_layers(model))
    size = (budget.height, budget.width)
    exports = {size: export_pair(model, state, binarized, work / f"{entry.key}.onnx", *size,
                                 budget.calibration_frames)}
    fp32, int8, missing_ops = exports[size]
    accuracy, int8_accuracy = score(fp32, frames), score(int8, frames)
    counted = profile(entry.model, *FLOPS_SIZE)
    memory = counted["weight_memory_mb"]
    latency = {"fp32": {}, "int8": {}}
    for height, width, runs in tqdm(budget.latency, desc=f"latency {entry.label}", leave=False):
        if (height, width) not in exports:    # the scored model's size is timed as it is
            exports[height, width] = export_pair(model, state, binarized, work / f"{entry.key}_{height}x{width}.onnx",
                                                 height, width, LATENCY_CALIBRATION_FRAMES)
        for precision, path in zip(("fp32", "int8"), exports[height, width][:2]):
            latency[precision][f"{height}x{width}"] = {**timed(load_backend(path, "onnxruntime"), runs),
                                                       "runs": runs}
    return {"label": entry.label, "model": entry.model, "binarized": binarized, **trained, **accuracy,
            "int8_miou": int8_accuracy["miou"], "parameters": counted["parameters"]["total"],
            "real_gflops": counted["real_gflops"],
            "weight_memory_mb": memory["packed_1bit"] if binarized else memory["fp32"],
            "weight_memory_kind": "packed 1-bit" if binarized else "fp32", "latency_ms": latency,
            "ops_outside_tensorrt_list": missing_ops}


def fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def markdown(result: dict) -> str:
    budget, machine, rows = result["budget"], result["machine"], result["rows"]
    sizes = [f"{h}x{w}" for h, w, _ in budget["latency"]]
    runs = ", ".join(f"{r} calls at {h}x{w}" for h, w, r in budget["latency"])
    lines = markdown_header("BiSegUNet against torchvision's lightweight segmentation models", result["command"],
                            machine)
    lines += [
        f"Whole run: {result['minutes']:.1f} min on this machine. Torch threads: {result['torch_threads']}.", "",
        "| model | params (M) | real GFLOPs 512x1024 | weights (MB) | mIoU % | Dice % | pixel acc. % | INT8 mIoU % | "
        + " | ".join(f"{p} {s} ms (median / p90)" for s in sizes for p in ("FP32", "INT8")) + " | train min |",
        "|---|---|---|---|---|---|---|---|" + "---|" * (2 * len(sizes)) + "---|"]
    for r in rows:
        latency = [f"{r['latency_ms'][p][s]['median_ms']:.1f} / {r['latency_ms'][p][s]['p90_ms']:.1f}"
                   for s in sizes for p in ("fp32", "int8")]
        lines.append(f"| {r['label']} | {r['parameters'] / 1e6:.2f} | {r['real_gflops']:.1f} | "
                     f"{r['weight_memory_mb']:.2f} ({r['weight_memory_kind']}) | {fmt(r['miou'], 100)} | "
                     f"{fmt(r['mean_dice'], 100)} | {fmt(r['pixel_accuracy'], 100)} | {fmt(r['int8_miou'], 100)} | "
                     + " | ".join(latency) + f" | {r['train_minutes']:.1f} |")
    tv = result["torchvision"]
    odd_ops = sorted({op for r in rows for op in r["ops_outside_tensorrt_list"]})
    lines += [
        "", f"![mIoU against FP32 latency at {sizes[0]}](miou_vs_latency.png)", "",
        "**Budget, the same for every model**: synthetic street scenes (training/data/scenes.py) at "
        f"{budget['height']}x{budget['width']}, difficulty {result['difficulty']}, augmentation on (random scale "
        f"and crop, flip, colour jitter); {budget['epochs']} epochs x {budget['iters_per_epoch']} iterations x batch "
        f"{budget['batch_size']} = {budget['epochs'] * budget['iters_per_epoch'] * budget['batch_size']} images; "
        "CE + Dice loss, Adam 1e-3, cosine learning rate restarting at the phase boundaries "
        f"{result['phase_boundaries']} (epochs). Binarized runs switch the binary layers on in phase 2 and "
        "train fully binary in phase 3; float runs (binarize=false) and the torchvision models use the same "
        "schedule without binarization. Each row's command, run alone, repeats its training:", ""]
    lines += [f"- {r['label']}: `{r['command']}`" for r in rows]
    lines += [
        "", f"**torchvision {tv}**: `lraspp_mobilenet_v3_large` and `deeplabv3_mobilenet_v3_large` built with "
        "`weights=None, weights_backbone=None` (no auxiliary head), i.e. torchvision's architectures trained "
        "from scratch here. No pretrained weights can be downloaded on this machine; with ImageNet-pretrained "
        "backbones, as torchvision ships them, these models start far ahead, so this table compares "
        "architectures under one small budget, not published checkpoints. They are kept exactly as torchvision "
        "builds them, including the MobileNetV3 backbone's BatchNorm momentum of 0.01 (BiSegUNet: 0.1), whose "
        "running statistics lag further behind the weights in a short run.", "",
        f"**Accuracy**: the best checkpoint (validation mIoU on {budget['val_size']} scenes; once fully binary "
        "for binarized runs, over all epochs otherwise), exported to ONNX and scored through the runtime "
        "(bisegunet_ros pipeline and metrics, Cityscapes definitions) on "
        f"{budget['test_frames']} held-out scenes (seed {EVAL_SEED}, used by no training or validation split) "
        f"at {budget['height']}x{budget['width']}. Every model goes through bisegunet-export's graph (uint8 "
        "pixels in, uint8 labels out). INT8: bisegunet-quantize, symmetric int8 QDQ (per-channel weights), "
        f"calibrated on {budget['calibration_frames']} synthetic frames. Scores on synthetic scenes "
        "with this budget are low in absolute terms and not comparable with Cityscapes numbers.", "",
        "**Size**: parameters and real FLOPs (2 x multiply-accumulates of convolutions and attention, "
        "binary convolutions counted as ordinary ones; element-wise operations not counted) from "
        "`bisegunet-profile` at 512x1024. Weights: packed 1-bit (1 bit per binary weight, FP32 alphas and "
        "float layers) for binarized rows, FP32 otherwise.", "",
        f"**Latency**: ONNX Runtime {machine['onnxruntime']} CPU execution provider through the runtime's "
        "backend (all graph optimisations, sequential execution, all cores), batch 1, a model exported at each "
        f"size (the networks are fully convolutional; trained at {budget['height']}x{budget['width']}), "
        f"3 warm-up calls, then median and p90 over {runs}. INT8 models that are only timed are "
        f"calibrated on {LATENCY_CALIBRATION_FRAMES} frame (the latency does not depend on the values). All "
        "timings were taken in this one run, after all training had finished.", ""]
    if odd_ops:
        lines += [f"The torchvision graphs use {', '.join(odd_ops)}, which is not in the TensorRT 8.4 operator list "
                  "the exporter checks BiSegUNet against (training/tensorrt_onnx_ops.txt); they were exported for "
                  "ONNX Runtime only.", ""]
    return "\n".join(lines)


def plot(rows: list[dict], size: str, out: Path) -> Path:
    """mIoU against FP32 latency, marker area proportional to parameters (like the paper's Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    kinds = {"BiSegUNet, binarized": "tab:red", "BiSegUNet, float": "tab:orange",
             "torchvision, from scratch": "tab:blue"}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    largest = max(r["parameters"] for r in rows)
    latencies = [r["latency_ms"]["fp32"][size]["median_ms"] for r in rows]
    for r, x in zip(rows, latencies):
        y = 100 * (r["miou"] or 0)
        kind = ("torchvision, from scratch" if r["model"].startswith("torchvision:")
                else "BiSegUNet, binarized" if r["binarized"] else "BiSegUNet, float")
        ax.scatter(x, y, s=1500 * r["parameters"] / largest + 20, color=kinds[kind], alpha=0.5, edgecolors="black")
        ax.annotate(f"{r['label']} ({r['parameters'] / 1e6:.2f} M)", (x, y), textcoords="offset points",
                    xytext=(8, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(latencies) / 1.5, max(latencies) * 4)     # room for the labels right of the points
    ax.margins(y=0.15)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.legend(handles=[plt.Line2D([], [], marker="o", linestyle="", color=c, alpha=0.5, markersize=10, label=k)
                       for k, c in kinds.items()], loc="lower right", fontsize=8)
    ax.set_xlabel(f"ONNX Runtime FP32 latency at {size}, median (ms, this CPU; log scale)")
    ax.set_ylabel("mIoU on held-out synthetic scenes (%)")
    ax.set_title("Accuracy against CPU latency; marker area proportional to parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy budget and sizes: checks the path, not the models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where RESULTS.md/.json and the plot go")
    parser.add_argument("--runs", type=Path, help="training runs (default: runs/ here, OUT/runs with --smoke)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    budget = SMOKE if args.smoke else FULL
    runs = args.runs or (args.out / "runs" if args.smoke else ROOT / "runs")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    machine = describe()
    trained = [train(entry, budget, runs) for entry in ENTRIES]
    cfg = load_config(ROOT / CONFIG, TrainConfig, budget.overrides())
    frames = [render_scene(EVAL_SEED, i, budget.height, budget.width, cfg.data.difficulty)
              for i in range(budget.test_frames)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(entry, t, budget, frames, Path(tmp)) for entry, t in zip(ENTRIES, trained)]
    result = {"command": "python -m bench.compare" + (" --smoke" if args.smoke else ""), "machine": machine,
              "torch_threads": torch.get_num_threads(), "torchvision": import_torchvision().__version__,
              "budget": asdict(budget), "difficulty": cfg.data.difficulty,
              "phase_boundaries": list(PhaseSchedule(budget.epochs, tuple(cfg.phase_fractions)).boundaries),
              "rows": rows, "minutes": (time.perf_counter() - started) / 60}
    text = write_results(args.out / "RESULTS", result, markdown(result))
    plot(rows, f"{budget.latency[0][0]}x{budget.latency[0][1]}", args.out / "miou_vs_latency.png")
    print(text)
    return 0 if all(math.isfinite(r["miou"] or math.nan) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
