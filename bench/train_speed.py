"""Training throughput per precision setting, side by side in one run: images/s and peak GPU memory.

    python -m bench.train_speed [--device cuda] [--preset small --height 512 --width 1024 --batch 8]
    python -m bench.train_speed --smoke --out /tmp/train_speed     # a few tiny steps on CPU: the mechanics

One step is what bisegunet-train does per batch in phase 3 (every binary layer binarized): forward,
the segmentation loss, backward and an Adam step, through training/precision.py, on a fixed random
batch already on the device (data loading is bench/data_speed.py's question). Each setting gets
`--warmup` steps (cuDNN autotuning), then `--repeats` timings of `--steps` steps each.
Writes bench/train_speed.json and .md (or --out STEM).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.machine import markdown_header, write_run
from bisegunet_training.losses import SegmentationLoss
from bisegunet_training.model import binary_layers, build_model, load_model_config, set_binarized
from bisegunet_training.precision import Precision

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {   # label -> (amp, channels_last); fp32 is what bisegunet-train does without the options
    "fp32": ("off", False),
    "bf16": ("bf16", False),
    "bf16 + channels_last": ("bf16", True),
    "fp16 + channels_last": ("fp16", True),
}
NUM_CLASSES = 19


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(label: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Warm up, then time `repeats` x `steps` training steps of one setting."""
    amp, channels_last = SETTINGS[label]
    torch.manual_seed(0)
    precision = Precision(amp, channels_last, device)
    model = precision.model(build_model(load_model_config(args.preset)))
    set_binarized(model, True)
    model.train()
    weights = [layer.weight for _, layer in binary_layers(model)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = SegmentationLoss()
    images = precision.images(torch.randn(args.batch, 3, args.height, args.width))
    labels = torch.randint(0, NUM_CLASSES, (args.batch, args.height, args.width)).to(device)

    def step() -> None:
        with precision.autocast():
            logits = model(images).float()
        loss, _ = loss_fn(logits, labels, weights)
        optimizer.zero_grad(set_to_none=True)
        precision.step(loss, optimizer)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    rates = []
    for _ in range(args.repeats):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
        rates.append(args.batch * args.steps / (time.perf_counter() - started))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"setting": label, "amp": amp, "channels_last": channels_last, "images_per_s": rates,
            "images_per_s_median": statistics.median(rates), "peak_memory_gib": peak}


def markdown(results: list[dict], args: argparse.Namespace, command: str, machine: dict) -> str:
    base = results[0]["images_per_s_median"]
    lines = markdown_header("Training speed per precision setting", command, machine)
    lines += [f"`{args.preset}` preset, {args.height}x{args.width}, batch {args.batch}, every binary layer "
              f"binarized (phase 3); one step = forward + loss + backward + Adam (training/precision.py), on "
              f"{args.device_used}. {args.warmup} warm-up steps, then {args.repeats} timings of {args.steps} "
              f"steps; images/s is the median, spread min-max. cudnn.benchmark is on for every CUDA row.", "",
              "| setting | images/s | spread | vs fp32 | peak GPU memory (GiB) |", "|---|---|---|---|---|"]
    for r in results:
        memory = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "n/a (CPU)"
        lines.append(f"| {r['setting']} | {r['images_per_s_median']:.1f} | {min(r['images_per_s']):.1f}-"
                     f"{max(r['images_per_s']):.1f} | {r['images_per_s_median'] / base:.2f}x | {memory} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 64x128, batch 2, 2 steps: CPU-sized")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/train_speed", help="STEM of STEM.json and STEM.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.height, args.width, args.batch, args.steps, args.warmup = "tiny", 64, 128, 2, 2, 1
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda asked for but CUDA is not available", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    args.device_used = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    results = []
    for label in args.settings:
        results.append(measure(label, args, device))
        print(f"{label}: {results[-1]['images_per_s_median']:.1f} images/s", file=sys.stderr)
    print(write_run(args.out, "bench.train_speed", argv, args, results, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
