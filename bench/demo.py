"""Models compared on the demo itself: `make demo`'s bag replayed live through the segmentation node.

    python -m bench.demo [--models models/bisegunet_fast.onnx OTHER.onnx] [--frames 60] [--rates 1 3]
        [--repeats 3]
    python -m bench.demo --smoke --out DIR       # 4 frames of 128x256 (checks the path only)

One bag as `make demo` writes it (bisegunet-make-bag: --frames synthetic 512x1024 street scenes with
ground truth at 10 Hz, from make-bag's held-out seed). Each repetition evaluates every model in turn
(the order rotated per repetition, so a change of load hits all alike) with `bisegunet-eval-bag --live`
in a fresh process, at each --rate (replay speed relative to the recording): rate 1 is the demo, where
fps is the bag's 10 Hz as long as the node keeps up; a faster rate shows what the node sustains (the
node keeps the newest frame: a frame it has no time for is dropped, not queued). Reported per model and
rate: mIoU of the answered frames, answered frames per second, the fraction of published frames
answered and the end-to-end latency (publish to label received) p50 and p90: the median over
repetitions and the min-max. DDS stays on localhost in a domain of this bench's own (bench/ros_env.py).
Writes OUT.json and OUT.md (OUT = bench/demo by default).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.machine import markdown_header, write_run
from bench.ros_env import localhost_env
from bench.stats import spread
from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
MODELS = [ROOT / "models" / f"{SHIPPED_MODEL}.onnx"]
DEMO_SIZE = (512, 1024)
SMOKE_SIZE = (128, 256)
FIELDS = ("miou_percent", "fps", "answered_percent", "latency_p50_ms", "latency_p90_ms")


def make_bag(bag: Path, frames: int, size: tuple[int, int]) -> None:
    """The demo's bag (Makefile `demo`)."""
    from bisegunet_training.make_bag import main as make_bag_main

    if make_bag_main([str(bag), "--frames", str(frames), "--height", str(size[0]), "--width", str(size[1]),
                      "--fps", "10"]):
        raise RuntimeError("bisegunet-make-bag failed")


def live(bag: Path, model: Path, rate: float, out: Path) -> dict:
    """One `bisegunet-eval-bag --live` in its own process: the FIELDS of its report."""
    run = subprocess.run([sys.executable, "-m", "bisegunet_ros.evaluation.evaluate_bag", str(bag), "--live",
                          "--model", str(model), "--backend", "onnxruntime", "--rate", str(rate), "--out", str(out)],
                         env=localhost_env(), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"bisegunet-eval-bag --live {model} at rate {rate} failed:\n{run.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    frames = report["frames"]
    return {"miou_percent": 100 * report["metrics"]["miou"], "fps": report["fps"],
            "answered_percent": 100 * (frames["published"] - frames["without_prediction"]) / frames["published"],
            "latency_p50_ms": report["latency_ms"]["p50"], "latency_p90_ms": report["latency_ms"]["p90"]}


def summarise(values: list[dict]) -> dict:
    """Per field: the median over repetitions, its min-max and the values."""
    return {field: spread(v[field] for v in values) for field in FIELDS}


def markdown(results: list, args, command: str, machine: dict) -> str:
    size = "x".join(map(str, SMOKE_SIZE if args.smoke else DEMO_SIZE))
    lines = markdown_header("The demo, model against model", command, machine)
    lines += [f"A bag of {args.frames} synthetic {size} frames at 10 Hz (`make demo`'s), replayed live through the "
              f"node (ONNX Runtime, CPU) by `bisegunet-eval-bag --live`, {args.repeats} repetitions with the models "
              "in turn; median (min-max) over repetitions. Rate: replay speed relative to the recording (1 = the "
              "demo).", "",
              "| model | rate | mIoU % | answered fps | answered % | latency p50 ms | latency p90 ms |",
              "|---|---|---|---|---|---|---|"]
    for row in results:
        cells = [f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})" for s in (row[f] for f in FIELDS)]
        lines.append(f"| {row['model']} | {row['rate']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", default=MODELS, help="ONNX files of bisegunet-export")
    parser.add_argument("--frames", type=int, default=60, help="frames of the bag (make demo's default)")
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 3.0], help="replay speeds (1 = the demo)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions, the models in turn in each")
    parser.add_argument("--smoke", action="store_true", help="128x256 frames: checks the path only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/demo", help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeats < 1 or min(args.rates) <= 0:
        parser.error("--frames and --repeats must be at least 1, every --rate above 0")
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        parser.error(f"no such model: {', '.join(missing)}")
    if len({m.name for m in args.models}) < len(args.models):
        parser.error("--models: each file needs a name of its own (rows are named by it)")
    args.models = [m.resolve() for m in args.models]
    values: dict[tuple[str, float], list[dict]] = {(str(m), r): [] for m in args.models for r in args.rates}
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        make_bag(bag, args.frames, SMOKE_SIZE if args.smoke else DEMO_SIZE)
        for rep in range(args.repeats):
            order = args.models[rep % len(args.models):] + args.models[:rep % len(args.models)]
            for model in order:
                for rate in args.rates:
                    report = Path(tmp) / f"report_{len(values[(str(model), rate)])}_{model.stem}_{rate:g}"
                    values[(str(model), rate)].append(live(bag, model, rate, report))
    results = [{"model": Path(model).name, "path": model, "rate": rate, **summarise(v)}
               for (model, rate), v in values.items()]
    print(write_run(args.out, "bench.demo", argv, args, results, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
