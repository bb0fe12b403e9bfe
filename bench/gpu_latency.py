"""GPU latency of bench/pareto.py's models in PyTorch: FP16, CUDA graphs, batch 1 and 4, 512x1024 and 1024x2048.

    python -m bench.gpu_latency [--out bench/gpu_latency] [--batches 1 4] [--sizes 512x1024 1024x2048]
        [--models lraspp deeplabv3 fast tiny small] [--repetitions 50] [--warmup 10]

Where no GPU is available it measures nothing: one line on stderr and exit status 2 (bench/gpu_session.sh
runs it as its last phase; nothing else requires it). Each model is built with random weights
(latency does not depend on them; binarized and float forms of a preset are the same graph once
folded), folded like the export (BatchNorm into the convolutions: training/fold.py), in FP16 and
channels-last, and its forward plus the argmax to labels is captured once per batch and size in a
CUDA graph; CUDA events time each replay after `--warmup` replays. Also the same in eager FP16, to
show what the graph saves. Writes OUT.json and OUT.md with the GPU, CUDA and cuDNN versions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench.machine import describe, markdown_header, write_results
from bench.pareto_models import ENTRIES

ROOT = Path(__file__).resolve().parents[1]
MODELS = {e.key.removesuffix("_float"): e.model for e in ENTRIES if not e.binarize}   # one row per architecture


def parse_size(text: str) -> tuple[int, int]:
    """HxW, both positive: argparse's type for --sizes."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxW, e.g. 512x1024") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: height and width must be positive")
    return height, width


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench/gpu_latency", help="OUT.json and OUT.md are written")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="batch sizes (positive)")
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(512, 1024), (1024, 2048)], metavar="HxW")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--repetitions", type=int, default=50, help="timed CUDA graph replays per case")
    p.add_argument("--warmup", type=int, default=10, help="untimed replays first")
    return p


def timed(run, repetitions: int, warmup: int) -> dict:
    """Milliseconds of `run()` by CUDA events, one pair per call: median, min, max."""
    import torch

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repetitions):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def measure(model_name: str, batch: int, height: int, width: int, repetitions: int, warmup: int) -> dict:
    """One model at one batch and size: eager FP16 and CUDA-graph FP16, forward + argmax."""
    import torch

    from bisegunet_training.fold import fold_for_inference
    from bisegunet_training.model import build_model, load_model_config

    model = fold_for_inference(build_model(load_model_config(model_name)))
    model = model.to("cuda", torch.float16, memory_format=torch.channels_last).eval()
    x = torch.randn(batch, 3, height, width, device="cuda", dtype=torch.float16).contiguous(
        memory_format=torch.channels_last)

    def forward() -> torch.Tensor:
        return model(x).argmax(1)

    with torch.inference_mode():
        eager = timed(forward, repetitions, warmup)
        side = torch.cuda.Stream()                  # capture needs its warm-up on a side stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            forward()
        graphed = timed(graph.replay, repetitions, warmup)
    del graph, model, x
    torch.cuda.empty_cache()
    return {"eager_fp16_ms": eager, "cuda_graph_fp16_ms": graphed,
            "cuda_graph_fps": 1000 * batch / graphed["median"]}


def markdown(result: dict) -> str:
    lines = markdown_header("GPU latency: PyTorch FP16 with CUDA graphs", result["command"], result["machine"])
    lines += [f"Random weights, BatchNorm folded, FP16 channels-last, forward + argmax; CUDA events around each "
              f"call, {result['repetitions']} timed after {result['warmup']} warm-up calls, median (min-max) ms.", "",
              "| model | batch | size | CUDA graph ms | frames/s | eager ms |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        g, e = r["cuda_graph_fp16_ms"], r["eager_fp16_ms"]
        lines.append(f"| {r['model']} | {r['batch']} | {r['size']} | {g['median']:.2f} ({g['min']:.2f}-{g['max']:.2f})"
                     f" | {r['cuda_graph_fps']:.0f} | {e['median']:.2f} ({e['min']:.2f}-{e['max']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if min(args.batches) < 1 or args.repetitions < 1 or args.warmup < 0:
        p.error("--batches and --repetitions must be at least 1, --warmup at least 0")
    import torch

    if not torch.cuda.is_available():
        print(f"bench.gpu_latency: error: CUDA is not available (torch {torch.__version__} sees no GPU); "
              "nothing measured", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    rows = [{"model": name, "batch": batch, "size": f"{h}x{w}",
             **measure(MODELS[name], batch, h, w, args.repetitions, args.warmup)}
            for name in args.models for h, w in args.sizes for batch in args.batches]
    result = {"command": " ".join(["python -m bench.gpu_latency", *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe(), "repetitions": args.repetitions, "warmup": args.warmup, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_results(args.out, result, markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
