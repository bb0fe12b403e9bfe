"""What the exported graph's head and tail cost: the bare network against bisegunet-export's graph, on this CPU.

    python -m bench.tail [--models fast tiny small torchvision:lraspp_mobilenet_v3_large
        torchvision:deeplabv3_mobilenet_v3_large] [--height 512 --width 1024] [--runs 5] [--repeats 5] [--threads 0]
        [--profile]
    python -m bench.tail --smoke --out DIR      # toy size, 1 call, 2 repetitions (checks the path only)

Per model (random weights: latency does not depend on their values) three graphs, all run by ONNX
Runtime with the backend's session options:
- bare: the folded float network as torch.onnx.export writes it (torchvision's LR-ASPP and DeepLabV3 upsample
  its logits bilinearly to the input size inside it, as does `fast`, whose decoder stops at stride 8;
  tiny's and small's decoders end at the input size)
  followed by ArgMax over the class axis, fed normalised float NCHW;
- labels + confidence: the bisegunet-export graph (uint8 NHWC pixels in), OnnxRuntimeBackend.infer;
- labels only: the same backend with confidence=False (the graph less its confidence branch).
Each repetition makes `--runs` rounds of one call of each graph in turn (after a warm-up call),
so a change of load on the machine hits the three alike. Reported: the median over repetitions
of each graph's per-repetition median and their min-max, the ratio of each graph to bare
computed per repetition (median, min-max), and the ratio of the fastest calls (the least
disturbed by other work). The machine's load is recorded (bench/machine.py): on a loaded machine
the ratios hold better than the milliseconds. `--profile` adds one profiled run of each graph
(ONNX Runtime's profiler, SessionOptions.enable_profiling): ms per op type.
Writes OUT.json and OUT.md (OUT = bench/tail by default).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from bench.machine import STARTED, markdown_header, write_run
from bench.ort_profile import by_op, kernel_times, ms_by
from bench.stats import spread
from bisegunet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, inference_session, session_options
from bisegunet_ros.onnx_wire import without_output

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("fast", "tiny", "small", "torchvision:lraspp_mobilenet_v3_large", "torchvision:deeplabv3_mobilenet_v3_large")
GRAPHS = ("bare", "labels + confidence", "labels only")


def bare_graph(core: onnx.ModelProto) -> onnx.ModelProto:
    """The float core with ArgMax over the class axis as its only output."""
    logits = core.graph.output[0].name
    core.graph.node.append(onnx.helper.make_node("ArgMax", [logits], ["argmax"], axis=1, keepdims=0))
    del core.graph.output[:]
    core.graph.output.append(onnx.helper.make_tensor_value_info("argmax", onnx.TensorProto.INT64, None))
    return core


def export_graphs(preset: str, height: int, width: int, tmp: Path) -> tuple[Path, Path]:
    """(bare graph, bisegunet-export graph) of `preset` with random weights at height x width."""
    from bench.backends import random_state
    from bisegunet_training.export import export_float_core, export_onnx, model_info

    model, state = random_state(preset)
    name = preset.replace(":", "_")
    bare = tmp / f"{name}.bare.onnx"
    onnx.save(bare_graph(export_float_core(model, height, width)), str(bare))
    exported = tmp / f"{name}.onnx"
    export_onnx(model, exported, height, width, model_info(state, height, width, False, False),
                tensorrt_check=not preset.startswith("torchvision:"))
    return bare, exported


def callables(bare: Path, exported: Path, threads: int) -> dict:
    """One zero-argument call per graph, inputs made once."""
    session = inference_session(str(bare), session_options(threads))
    shape = session.get_inputs()[0].shape
    normalised = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    backend = OnnxRuntimeBackend(exported, threads=threads)
    pixels = np.random.default_rng(0).integers(0, 256, (1, *shape[2:], 3), dtype=np.uint8)
    return {"bare": lambda: session.run(None, {"input": normalised}),
            "labels + confidence": lambda: backend.infer(pixels, confidence=True),
            "labels only": lambda: backend.infer(pixels, confidence=False)}


def ms(call) -> float:
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1e3


def profile_ms_by_op(model: bytes | str, feed: dict, threads: int, tmp: Path) -> dict[str, float]:
    """ms per op type of one run after a warm-up, from ONNX Runtime's profiler."""
    return ms_by(kernel_times(model, feed, threads, tmp), by_op)


def profiles(bare: Path, exported: Path, threads: int, tmp: Path) -> dict[str, dict[str, float]]:
    shape = onnx.load(str(bare)).graph.input[0].type.tensor_type.shape
    n, c, h, w = (d.dim_value for d in shape.dim)
    normalised = {"input": np.zeros((n, c, h, w), np.float32)}
    pixels = {"pixels": np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)}
    full = exported.read_bytes()
    return {"bare": profile_ms_by_op(str(bare), normalised, threads, tmp),
            "labels + confidence": profile_ms_by_op(full, pixels, threads, tmp),
            "labels only": profile_ms_by_op(without_output(full, "confidence"), pixels, threads, tmp)}


def measure(preset: str, args, tmp: Path) -> dict:
    bare, exported = export_graphs(preset, args.height, args.width, tmp)
    calls = callables(bare, exported, args.threads)
    for call in calls.values():
        call()
    per_repeat, fastest = {g: [] for g in GRAPHS}, {g: float("inf") for g in GRAPHS}
    for _ in range(args.repeats):
        times = {g: [] for g in GRAPHS}
        for _ in range(args.runs):                 # one call of each graph in turn
            for graph, call in calls.items():
                times[graph].append(ms(call))
        for graph, values in times.items():
            per_repeat[graph].append(float(np.median(values)))
            fastest[graph] = min(fastest[graph], *values)
    row = {"model": preset, "network": f"{args.height}x{args.width}",
           "latency_ms": {g: spread(v) for g, v in per_repeat.items()},
           "ratio_to_bare": {g: spread([a / b for a, b in zip(per_repeat[g], per_repeat["bare"])])
                             for g in GRAPHS[1:]},
           "fastest_ms": fastest, "ratio_of_fastest": {g: fastest[g] / fastest["bare"] for g in GRAPHS[1:]}}
    if args.profile:
        row["profile_ms_by_op"] = profiles(bare, exported, args.threads, tmp)
    return row


def markdown(results: list, args, command: str, machine: dict) -> str:
    lines = markdown_header("The exported graph's head and tail against the bare network", command, machine)
    loaded = STARTED["loadavg"][0] > 1.0   # before the bench ran: its own two threads are not "other work"
    lines += [f"ONNX Runtime CPU, batch 1, {args.threads or 'all'} intra-op thread(s), random weights. Each of "
              f"{args.repeats} repetitions makes {args.runs} rounds of one call of each graph in turn; shown: the "
              "median over repetitions of the per-repetition medians (min-max), and each graph's ratio to bare "
              "computed within each repetition, and the ratios of the fastest calls. bare = folded float network "
              "+ ArgMax (LR-ASPP's bilinear upsampling of its logits is inside its network); labels + confidence = "
              "the bisegunet-export graph (uint8 pixels in); labels only = the same graph less its confidence "
              "branch (what the node runs while nobody subscribes to confidence).",
              *(["", "Other work was running when the bench started: read the ratios, not the ms."] if loaded else []),
              "", "| model | network | bare ms | labels + confidence ms | labels only ms | labels + confidence / bare "
              "| labels only / bare | fastest calls: l+c / bare, l / bare |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ms, ratio = r["latency_ms"], r["ratio_to_bare"]
        cells = [f"{ms[g]['median']:.1f} ({ms[g]['min']:.1f}-{ms[g]['max']:.1f})" for g in GRAPHS]
        cells += [f"{ratio[g]['median']:.3f}x ({ratio[g]['min']:.3f}-{ratio[g]['max']:.3f})" for g in GRAPHS[1:]]
        cells.append(", ".join(f"{r['ratio_of_fastest'][g]:.3f}x" for g in GRAPHS[1:]))
        lines.append(f"| {r['model']} | {r['network']} | " + " | ".join(cells) + " |")
    for r in results:
        if "profile_ms_by_op" in r:
            lines += ["", f"ONNX Runtime profile, {r['model']} at {r['network']} (one run, ms per op type, top 8):", ""]
            for graph, ops in r["profile_ms_by_op"].items():
                top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(ops.items())[:8])
                lines.append(f"- {graph}: total {sum(ops.values()):.1f} ms; {top}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="presets or torchvision:<architecture>")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5, help="timed calls of each graph per repetition")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved repetitions (at least 5 for reported numbers)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.add_argument("--profile", action="store_true", help="also ms per op type from ONNX Runtime's profiler")
    parser.add_argument("--smoke", action="store_true", help="tiny at 32x64, 1 call, 2 repetitions: checks the path")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/tail", help="OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.height, args.width, args.runs, args.repeats = ["tiny"], 32, 64, 1, 2
    import torch

    torch.set_num_threads(max(args.threads, 1) if args.threads else torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for preset in args.models:
            results.append(measure(preset, args, Path(tmp)))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "profile_ms_by_op"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_run(args.out, "bench.tail", argv, args, results, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
