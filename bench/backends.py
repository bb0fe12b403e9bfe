"""Backend latency on this CPU, FP32 and INT8 QDQ (the CPU INT8 model), and the INT8 model's accuracy against FP32.

    python -m bench.backends [--packed models/bisegunet_fast.packed.bin] [--runs 30] [--repeats 3]
    python -m bench.backends --smoke --out DIR      # the same path at toy sizes (checks it runs)

Latency: the shipped model (from its packed weights) at three network sizes and the small and fast
presets, issue 23's INT8 goal (random weights: latency does not depend on their values; the shipped
one's preset is not repeated) at 512x1024, each exported
with bisegunet-export's graph (uint8 pixels in, uint8 labels and confidence out) and quantized
with bisegunet-quantize; the INT8 rows run its CPU model (uint8 activations, what the ONNX
Runtime backend picks), with the share of the network's convolutions ONNX Runtime runs as
integer kernels (QLinearConv) in its optimised graph. Each (model, size) pair is timed in
--repeats fresh processes (a new session, allocator and thread pool each time); in each, FP32 and
INT8 take turns call by call (--runs calls each after 3 warm-up calls, bench/graph_latency.py), so
a change of load hits both alike. Shown: the median of the process medians and their min-max, and
the INT8 speed-up computed per process. The achieved FLOP rate is compared with numpy's FP32 GEMM
rate measured in the same run. At 512x1024 ONNX Runtime's profiler splits one run of each graph
into the network and the export's float head and tail (`uint8_io/` nodes), which quantization leaves float.
Accuracy: the shipped FP32 and CPU INT8 files on held-out synthetic scenes (a seed no training,
validation or calibration split uses): mIoU of each and the share of pixels with equal labels.
Writes OUT.json and OUT.md (OUT = bench/backends by default).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.graph_latency import WARMUP, interleaved_latency
from bench.machine import describe, fp32_gemm_gflops, markdown_header, write_results
from bench.stats import spread
from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / SHIPPED_MODEL   # + .onnx, .int8-cpu.onnx, .packed.bin
log = logging.getLogger(__name__)
SIZES = [(256, 512), (512, 1024), (1024, 2048)]
GOAL_PRESETS = ("small", "fast")     # issue 23: CPU INT8 >= 1.5x FP32 for these at 512x1024
PROFILE_SIZE = (512, 1024)
SMOKE_SIZES = [(32, 64), (64, 128)]
EVAL_SEED, EVAL_FRAMES = 8_000_009, 50


def timed_pair(fp32: Path, int8: Path, runs: int) -> dict:
    """Median ms of FP32 and INT8, `runs` interleaved calls each after warm-up, in this process."""
    ms = interleaved_latency({"fp32": fp32, "int8": int8}, runs)["ms"]
    return {precision: ms[precision]["median"] for precision in ("fp32", "int8")}


def timed_in_processes(fp32: Path, int8: Path, runs: int, repeats: int) -> dict:
    """`timed_pair` in `repeats` fresh processes: each precision's spread and the per-process speed-up."""
    medians = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-m", "bench.backends", "--time-pair", str(fp32), str(int8),
                              "--runs", str(runs)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(f"timing {fp32} and {int8} failed:\n{out.stderr[-2000:]}")
        medians.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"fp32": spread([m["fp32"] for m in medians]), "int8": spread([m["int8"] for m in medians]),
            "speed_up": spread([m["fp32"] / m["int8"] for m in medians])}


def profiled(path: Path, threads: int) -> dict:
    """One profiled run after a warm-up: ms of the network and of the export's head and tail, top op types."""
    from bench.ort_profile import by_op, kernel_times, ms_by
    from bisegunet_ros.model_info import ModelInfo
    from bisegunet_training.uint8_graph import INPUT
    from bisegunet_training.uint8_graph import PREFIX as IO_PREFIX

    info = ModelInfo.from_onnx(path)
    feed = {INPUT: np.random.default_rng(0).integers(0, 256, (1, info.input_height, info.input_width, 3), np.uint8)}
    with tempfile.TemporaryDirectory() as tmp:
        times = kernel_times(str(path), feed, threads, Path(tmp), info.int8_target)
    parts = ms_by(times, lambda t: "head and tail" if t.node.startswith(IO_PREFIX) else "network")
    return {"network_ms": parts.get("network", 0.0), "head_and_tail_ms": parts.get("head and tail", 0.0),
            "ms_by_op": ms_by(times, by_op)}


def random_state(preset: str, overrides: list[str] = (), binarized: bool = True):
    """An untrained model of `preset` (with key=value overrides; binary layers binarized unless `binarized` is
    False) and the checkpoint fields export needs (training's defaults).

    Its BatchNorm statistics and affine parameters are drawn at random, so that the biases folded into
    the convolutions differ from each other and from zero as a trained network's do: with a fresh
    BatchNorm every folded bias is zero, and identical initializers end up shared between nodes in
    the exported and quantized graphs (quantize.own_float_inputs), a graph no trained model gives."""
    import torch

    from bisegunet_ros.classes import CITYSCAPES
    from bisegunet_training.model import build_model, load_model_config, set_binarized
    from bisegunet_training.train_config import DataConfig

    cfg = load_model_config(preset, overrides)
    model = build_model(cfg).eval()
    generator = torch.Generator().manual_seed(0)
    for norm in (m for m in model.modules() if getattr(m, "running_var", None) is not None):   # BatchNorm*d
        n = norm.num_features
        norm.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
        norm.running_var.copy_(0.5 + torch.rand(n, generator=generator))
        if norm.affine:
            norm.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
            norm.bias.data.copy_(0.1 * torch.randn(n, generator=generator))
    set_binarized(model, binarized)
    data = DataConfig()
    return model, {"model_config": asdict(cfg), "data": {"mean": data.mean, "std": data.std,
                                                       "class_names": list(CITYSCAPES.names)},
                   "command": "", "commit": ""}


def export_pair(model, state: dict, path: Path, height: int, width: int, calibration_frames: int) -> tuple[Path, Path]:
    """FP32 and CPU INT8 QDQ models of `model` at one network size, with the project's exporter and quantizer."""
    from bisegunet_training.export import export_onnx, model_info
    from bisegunet_training.model import binary_layers
    from bisegunet_training.quantize import quantize

    layers = binary_layers(model)
    binarized = bool(layers) and all(layer.binarized for _, layer in layers)
    export_onnx(model, path, height, width, model_info(state, height, width, binarized, False))
    return path, quantize(path, path.with_suffix(".int8-cpu.onnx"), frames=calibration_frames, target="cpu")


def accuracy(fp32: Path, int8: Path, frames: int) -> dict:
    """mIoU of both models and their label agreement on held-out synthetic scenes at the model's size."""
    from bisegunet_ros.backends import load_backend
    from bisegunet_ros.metrics import ConfusionMatrix
    from bisegunet_ros.pipeline import SegmentationPipeline
    from bisegunet_training.data import render_scene

    pipelines = {p: SegmentationPipeline(load_backend(f, "onnxruntime"), output_resolution="network")
                 for p, f in (("fp32", fp32), ("int8", int8))}
    info = pipelines["fp32"].info
    matrices = {p: ConfusionMatrix(len(info.classes)) for p in pipelines}
    agree = []
    for i in range(frames):
        rgb, label = render_scene(EVAL_SEED, i, info.input_height, info.input_width)
        labels = {p: pipeline.run([rgb])[0].labels for p, pipeline in pipelines.items()}
        for p, m in matrices.items():
            m.update(label, labels[p])
        agree.append(float((labels["fp32"] == labels["int8"]).mean()))
    return {"network": f"{info.input_height}x{info.input_width}", "frames": frames, "seed": EVAL_SEED,
            "fp32_miou": matrices["fp32"].summary()["miou"], "int8_miou": matrices["int8"].summary()["miou"],
            "label_agreement": float(np.mean(agree)), "fp32_model": str(fp32), "int8_model": str(int8)}


def markdown(result: dict, command: str) -> str:
    machine, gemm, acc = result["machine"], result["fp32_gemm_gflops"], result["int8_accuracy"]
    lines = markdown_header("Backend latency on this CPU", command, machine)
    lines += [f"numpy FP32 GEMM (1024x1024, all cores), measured in the same run: **{gemm:.0f} GFLOP/s**.", "",
              f"ONNX Runtime {machine['onnxruntime']}, CPU execution provider, batch 1, uint8 frames in and uint8 "
              f"labels and confidence out (the exported graph). Each (model, size): {result['repeats']} fresh "
              f"processes, in each FP32 and INT8 called in turn, {result['runs']} calls each after {WARMUP} warm-up; "
              "shown: the median of the process medians and their min-max. Real FLOPs from bisegunet-profile at the "
              "row's network size. INT8: the CPU INT8 model of bisegunet-quantize (uint8 activations); integer "
              "convs: the network's convolutions that ONNX Runtime's optimised graph runs as QLinearConv.", "",
              "| model | network size (HxW) | precision | median ms | min-max ms | real GFLOPs | achieved GFLOP/s "
              "| of GEMM rate | integer convs |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ms, convs = r["latency_ms"], r.get("integer_convs")
        lines.append(f"| {r['model']} | {r['network']} | {r['precision']} | {ms['median']:.1f} | "
                     f"{ms['min']:.1f}-{ms['max']:.1f} | {r['real_gflops']:.2f} | {r['achieved_gflops']:.1f} | "
                     f"{100 * r['achieved_gflops'] / gemm:.0f} % | "
                     + (f"{convs['integer']} of {convs['total']} |" if convs else "- |"))
    lines += ["", "INT8 vs FP32 speed-up, FP32 ms / INT8 ms of each process (median and min-max over processes):", "",
              "| model | network size (HxW) | speed-up | range |", "|---|---|---|---|"]
    for r in result["rows"][1::2]:
        up = r["speed_up"]
        lines.append(f"| {r['model']} | {r['network']} | {up['median']:.2f}x | {up['min']:.2f}-{up['max']:.2f}x |")
    profiled = [r for r in result["rows"] if "profile" in r]
    lines += ["", "Where the time goes: ONNX Runtime's profiler, one run after a warm-up, the network against the "
              "export's float head (uint8 pixels to normalised input) and tail (labels, confidence; `uint8_io/` "
              "nodes, left out of quantization); ms summed over kernels (layout reorders count with the network). The "
              "profiler adds its own cost to every node, so a graph of many small nodes sums to more than it takes "
              "untraced: read the shares within a row, and the timings above for FP32 against INT8. INT8 bound: "
              "about the speed-up INT8 would reach if its network took no time, the FP32 median above over the INT8 "
              "median's float share (its head and tail's share of its own profile; the logits' upsampling counts with "
              "the tail where the tail does it), an estimate, since the profiler's cost per node differs between the "
              "two parts.", "", "| model | network size (HxW) | precision | network ms | head and tail ms | "
              "INT8 bound | top op types (ms) |", "|---|---|---|---|---|---|---|"]
    for r in profiled:
        prof = r["profile"]
        top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(prof["ms_by_op"].items())[:6])
        fp32 = next((f for f in profiled if f["precision"] == "fp32" and f["model"] == r["model"]
                     and f["network"] == r["network"]), None)
        float_share = prof["head_and_tail_ms"] / max(prof["network_ms"] + prof["head_and_tail_ms"], 1e-9)
        bound = (f"{fp32['latency_ms']['median'] / (r['latency_ms']['median'] * float_share):.1f}x"
                 if r["precision"] == "int8" and fp32 and float_share > 0 else "-")
        lines.append(f"| {r['model']} | {r['network']} | {r['precision']} | {prof['network_ms']:.1f} | "
                     f"{prof['head_and_tail_ms']:.1f} | {bound} | {top} |")
    lines += ["", f"CPU INT8 QDQ accuracy against FP32, `{Path(acc['fp32_model']).name}` and "
              f"`{Path(acc['int8_model']).name}` on {acc['frames']} held-out synthetic scenes (seed {acc['seed']}) "
              f"at network size {acc['network']}: FP32 mIoU {100 * acc['fp32_miou']:.2f} %, INT8 mIoU "
              f"{100 * acc['int8_miou']:.2f} % ({100 * (acc['int8_miou'] - acc['fp32_miou']):+.2f} points); "
              f"{100 * acc['label_agreement']:.2f} % of pixels get the same label.", "",
              "No GPU was available to this run; TensorRT timings need the vehicle (JetPack).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packed", type=Path, default=SHIPPED.with_suffix(".packed.bin"))
    parser.add_argument("--fp32", type=Path, default=SHIPPED.with_suffix(".onnx"), help="accuracy: FP32 model")
    parser.add_argument("--int8", type=Path, default=SHIPPED.with_suffix(".int8-cpu.onnx"),
                        help="accuracy: its CPU INT8 QDQ model")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per row (at least 3 for reported numbers)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, 2 calls, 2 scenes: checks the path only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/backends", help="OUT.json and OUT.md")
    parser.add_argument("--time-pair", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_pair:
        print(json.dumps(timed_pair(*args.time_pair, args.runs)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from bisegunet_training.model import model_config_from_dict
    from bisegunet_training.packed import load_packed
    from bisegunet_training.profile import profile
    from bisegunet_training.quantize import integer_convolutions

    torch.set_num_threads(2)
    runs, frames = (2, 2) if args.smoke else (args.runs, EVAL_FRAMES)
    machine = describe()
    gemm = fp32_gemm_gflops()
    shipped = load_packed(args.packed)
    preset = shipped[1]["model_config"]["name"]
    models = {f"{preset} (shipped)": shipped,
              **{f"{p} (random weights)": random_state(p) for p in GOAL_PRESETS if p != preset}}
    one = SMOKE_SIZES[:1] if args.smoke else [PROFILE_SIZE]
    sizes = {label: SMOKE_SIZES if args.smoke else SIZES if label.endswith("(shipped)") else one for label in models}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, state) in models.items():
            state = {"command": "", "commit": "", **state}
            for height, width in sizes[label]:
                pair = export_pair(model, state, Path(tmp) / f"{label.split()[0]}_{height}x{width}.onnx",
                                   height, width, calibration_frames=2 if args.smoke else 16)
                gflops = profile(model_config_from_dict(state["model_config"]), height, width)["real_gflops"]
                latency = timed_in_processes(*pair, runs, args.repeats)
                for precision, path in zip(("fp32", "int8"), pair):
                    rows.append({"model": label, "network": f"{height}x{width}", "precision": precision,
                                 "real_gflops": gflops, "latency_ms": latency[precision],
                                 "achieved_gflops": gflops / (latency[precision]["median"] / 1e3)})
                    if precision == "int8":
                        rows[-1]["integer_convs"] = dict(zip(("integer", "total"), integer_convolutions(path)))
                        rows[-1]["speed_up"] = latency["speed_up"]
                    if (height, width) == one[0]:
                        rows[-1]["profile"] = profiled(path, threads=0)
                    log.info("%s", {k: v for k, v in rows[-1].items() if k != "profile"})
    result = {"machine": machine, "fp32_gemm_gflops": gemm, "runs": runs, "repeats": args.repeats, "rows": rows,
              "int8_accuracy": accuracy(args.fp32, args.int8, frames)}
    command = "python -m bench.backends" + (" --smoke" if args.smoke else "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_results(args.out, result, markdown(result, command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
