"""Training data throughput: synthetic scenes rendered on the fly against the same scenes pre-rendered.

    python -m bench.data_speed [--sizes 128x256 512x1024 --batch 16 --workers 5]
    python -m bench.data_speed --smoke --out /tmp/data_speed     # small and short: the mechanics

Both paths go through what bisegunet-train uses (build_dataset with augmentation, build_loader with
`--workers` DataLoader processes): `synthetic` draws each scene when it is asked for; `folders` reads
PNGs written once by bisegunet-make-dataset (into a temporary directory here; the one-time cost of
rendering them on all cores is reported too). Files come from the page cache after the first
pass, as a dataset that fits in memory does. Writes bench/data_speed.json and .md (or --out STEM).
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import markdown_header, write_run
from bisegunet_training.data import build_dataset, build_loader
from bisegunet_training.make_dataset import make_dataset
from bisegunet_training.train_config import DataConfig

ROOT = Path(__file__).resolve().parents[1]


def size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    try:
        return int(height), int(width)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH, got {text!r}") from None


def samples_per_second(kind: str, root: str, height: int, width: int, args: argparse.Namespace) -> list[float]:
    """`repeats` timings of `batches` batches from a loader that has already delivered its first batches."""
    d = DataConfig()
    dataset = build_dataset(kind, "train", height, width, d.mean, d.std, augment=True, length=args.scenes,
                            root=root, difficulty=d.difficulty)
    loader = build_loader(dataset, args.batch, shuffle=True, workers=args.workers, distributed=False, seed=0)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))      # epoch after epoch
    for _ in range(max(2 * args.workers, 1)):                              # workers started, queues full
        next(batches)
    count = timed_batches(args.batches, height, width)
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(count):
            next(batches)
        rates.append(args.batch * count / (time.perf_counter() - started))
    return rates


def timed_batches(batches: int, height: int, width: int) -> int:
    """`batches` at 128x256, fewer for larger frames (at least 10): each timing lasts about as long."""
    return max(10, round(batches * 128 * 256 / (height * width))) if batches >= 10 else batches


def measure(height: int, width: int, args: argparse.Namespace, tmp: Path) -> dict:
    root = tmp / f"{height}x{width}"
    started = time.perf_counter()
    make_dataset(root, args.scenes, 1, height, width, workers=args.render_workers)
    render_s = time.perf_counter() - started
    row = {"height": height, "width": width, "prerender_scenes": args.scenes, "prerender_seconds": render_s,
           "prerender_workers": args.render_workers,
           "batches_per_timing": timed_batches(args.batches, height, width)}
    for kind in ("synthetic", "folders"):
        rates = samples_per_second(kind, str(root), height, width, args)
        row[kind] = {"samples_per_s": rates, "samples_per_s_median": statistics.median(rates)}
        print(f"{height}x{width} {kind}: {row[kind]['samples_per_s_median']:.1f} samples/s", file=sys.stderr)
    return row


def markdown(rows: list[dict], args: argparse.Namespace, command: str, machine: dict) -> str:
    lines = markdown_header("Training data throughput: on-the-fly synthetic scenes against pre-rendered folders",
                            command, machine)
    lines += [f"Training split with augmentation (random scale and crop, flip, colour jitter), batch {args.batch}, "
              f"{args.workers} DataLoader workers; {args.repeats} timings of {args.batches} batches (at 128x256, fewer "
              f"for larger frames, at least 10) after a warm-up; "
              f"samples/s is the median, spread min-max. `folders` reads {args.scenes} scenes pre-rendered by "
              f"`bisegunet-make-dataset` on {args.render_workers} processes (one-time cost in the last column).", "",
              "| network size | on the fly (samples/s) | spread | pre-rendered (samples/s) | spread | speed-up | "
              "pre-rendering (scenes/s) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        fly, files = r["synthetic"], r["folders"]
        lines.append(f"| {r['height']}x{r['width']} | {fly['samples_per_s_median']:.1f} | "
                     f"{min(fly['samples_per_s']):.1f}-{max(fly['samples_per_s']):.1f} | "
                     f"{files['samples_per_s_median']:.1f} | {min(files['samples_per_s']):.1f}-"
                     f"{max(files['samples_per_s']):.1f} | "
                     f"{files['samples_per_s_median'] / fly['samples_per_s_median']:.1f}x | "
                     f"{r['prerender_scenes'] / r['prerender_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=size, nargs="+", default=[(128, 256), (512, 1024)],
                        help="network sizes HEIGHTxWIDTH")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=5, help="DataLoader workers, as a GPU run would use")
    parser.add_argument("--batches", type=int, default=80,
                        help="batches per timing at 128x256; larger sizes fewer, at least 10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=256, help="scenes to pre-render (and the synthetic length)")
    parser.add_argument("--render-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--smoke", action="store_true", help="one size of 32x64, batch 2, 1 worker, 2 batches")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/data_speed", help="STEM of STEM.json and STEM.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.batch, args.workers, args.batches, args.scenes = [(32, 64)], 2, 1, 2, 8
    if min(args.batch, args.batches, args.repeats, args.scenes) < 1 or args.workers < 0:
        parser.error("--batch, --batches, --repeats and --scenes must be at least 1, --workers at least 0")
    with tempfile.TemporaryDirectory(prefix="data_speed_") as tmp:
        rows = [measure(h, w, args, Path(tmp)) for h, w in args.sizes]
    print(write_run(args.out, "bench.data_speed", argv, args, rows, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
