"""The sweep that chose the `fast` preset: entry stride, output stride and widths against LR-ASPP.

    nice -n 19 python -m bench.fast_sweep [--jobs 2] [--repetitions 7]   # trains what is missing, then times
    python -m bench.fast_sweep --smoke --runs DIR --out DIR              # the same path at toy sizes

Every candidate and LR-ASPP-MobileNetV3-Large (training/model/torchvision_models.py) get the same
short training: config/train/tiny_synthetic.yaml, float (binarize=false: binary weights change
neither the graph nor its CPU latency), 18 epochs x 8 iterations x batch 8 at 128x256, one seed,
each run its own process with one torch thread (bench/training.py's runner). A run whose test.json
is on disk is not trained again. Accuracy: test-split mIoU of best.pt (test.json). Latency: each
best.pt through bisegunet-export's graph at 512x1024 on ONNX Runtime's CPU provider, interleaved in
this one process (bench/graph_latency.py), as a ratio to LR-ASPP's in the same run. The pick: the
fastest candidate whose mIoU is above LR-ASPP's. Writes OUT/fast_sweep.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench.backends import random_state
from bench.graph_latency import export_checkpoint, export_model, interleaved_latency
from bench.machine import describe, markdown_header, write_results
from bench.pareto import shown_path
from bench.pareto_models import LRASPP
from bench.training import CONFIG, command, config, run_dir, train
from bisegunet_training.model import load_model_config
from bisegunet_training.profile import profile

ROOT = Path(__file__).resolve().parents[1]
# label -> (model, model overrides): widths of tiny or small, entry stride e, output stride o
CANDIDATES = {
    LRASPP: ("torchvision:lraspp_mobilenet_v3_large", []),
    **{f"{base}_e{e}_o{o}": (base, [f"entry_stride={e}", f"output_stride={o}"])
       for base, e, o in [("tiny", 4, 8), ("tiny", 4, 4), ("small", 4, 8), ("small", 4, 4), ("tiny", 2, 4),
                          ("small", 2, 8), ("small", 2, 4)]},     # about fastest first: trained in this order
}
BUDGET = ["binarize=false", "iters_per_epoch=8", "workers=0", "tensorboard=false"]
SMOKE = ["epochs=3", "iters_per_epoch=1", "batch_size=2", "data.height=64", "data.width=128", "data.val_size=2",
         "data.test_size=2"]
SIZE, SMOKE_SIZE = (512, 1024), (64, 128)


def overrides(label: str, runs: Path, smoke: bool) -> list[str]:
    model, model_overrides = CANDIDATES[label]
    listed = f"model_overrides=[{','.join(model_overrides)}]" if model_overrides else "model_overrides=[]"
    return [f"model={model}", listed, *BUDGET, *(SMOKE if smoke else []), "seed=0", f"name=fast_sweep_{label}",
            f"out_dir={runs}", "device=cpu"]


def measure(labels: list[str], runs: Path, smoke: bool, repetitions: int) -> tuple[list[dict], dict]:
    """Every candidate's size, FLOPs and test mIoU, and the interleaved latency of all their graphs. A candidate
    not trained (yet) is timed with random weights (latency does not depend on them); its mIoU is None."""
    size = SMOKE_SIZE if smoke else SIZE
    rows, graphs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in labels:
            model, model_overrides = CANDIDATES[label]
            run = run_dir(config(overrides(label, runs, smoke)))
            trained = (run / "test.json").is_file()
            path = Path(tmp) / f"{label}.onnx"
            graphs[label] = (export_checkpoint(run / "best.pt", path, *size) if trained
                             else export_model(*random_state(model, model_overrides), path, *size))
            counted = profile(load_model_config(model, model_overrides), *SIZE)
            rows.append({"label": label, "model": model, "model_overrides": model_overrides,
                         "command": shlex.join(command(overrides(label, runs, smoke))),
                         "parameters": counted["parameters"]["total"], "real_gflops": counted["real_gflops"],
                         "test_miou": json.loads((run / "test.json").read_text())["test_miou"] if trained else None})
        latency = interleaved_latency(graphs, repetitions)
    reference = latency["ms"][LRASPP]["median"]
    for row in rows:
        row["fp32_ms"] = latency["ms"][row["label"]]
        row["ratio_to_lraspp"] = row["fp32_ms"]["median"] / reference
    return rows, latency


def pick(rows: list[dict]) -> dict | None:
    """The fastest candidate (median FP32 latency) whose test mIoU is above LR-ASPP's."""
    reference = next(r for r in rows if r["label"] == LRASPP)
    if reference["test_miou"] is None:
        return None
    winners = [r for r in rows if r["label"] != LRASPP and r["test_miou"] is not None
               and r["test_miou"] > reference["test_miou"]]
    return min(winners, key=lambda r: r["fp32_ms"]["median"]) if winners else None


def miou(value: float | None) -> str:
    return "not trained" if value is None else f"{100 * value:.1f}"


def markdown(result: dict) -> str:
    lines = markdown_header("The `fast` preset's sweep: entry and output stride, widths, against LR-ASPP",
                            result["command"], result["machine"])
    chosen = result["chosen"]
    lat = result["latency"]
    lines += [f"Training (every row, one seed): `{CONFIG}` with `{' '.join(result['budget'])}` "
              f"({result['train_size']}); test mIoU of best.pt on the test split (test.json). Latency: "
              f"bisegunet-export's graph at {result['latency_size']} (uint8 in, labels and confidence out), "
              f"ONNX Runtime CPU, batch 1, {lat['repetitions']} interleaved repetitions after {lat['warmup']} "
              f"warm-up calls each, in one process. Load average (1/5/15 min) before "
              f"{lat['load_average_before']}, after {lat['load_average_after']}: the machine was shared, so "
              "read the ratio to LR-ASPP of the same run, not the milliseconds.", "",
              "| candidate | model | overrides | params (M) | real GFLOPs 512x1024 | test mIoU % | FP32 ms median "
              "(min - max) | ratio to LR-ASPP |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: r["fp32_ms"]["median"]):
        ms = r["fp32_ms"]
        mark = " **(chosen)**" if chosen and r["label"] == chosen else ""
        lines.append(f"| {r['label']}{mark} | {r['model']} | {' '.join(r['model_overrides']) or '-'} | "
                     f"{r['parameters'] / 1e6:.2f} | {r['real_gflops']:.1f} | {miou(r['test_miou'])} | "
                     f"{ms['median']:.0f} ({ms['min']:.0f} - {ms['max']:.0f}) | {r['ratio_to_lraspp']:.2f} |")
    lines += ["", f"Chosen: **{chosen}**, the fastest candidate whose test mIoU is above LR-ASPP's "
              "(config/model/fast.yaml)." if chosen else "No candidate's test mIoU is above LR-ASPP's.", "",
              "A candidate shown as not trained was timed with random weights (latency does not depend on "
              "them) and left untrained in this run (`--candidates`, `--measure-only`): it can be chosen only "
              "once trained. Each row's training command:", ""]
    lines += [f"- {r['label']}: `{r['command']}`" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, each one process with one thread")
    parser.add_argument("--repetitions", type=int, default=7, help="interleaved timed calls per model")
    parser.add_argument("--smoke", action="store_true", help="toy budget and sizes: checks the path, not the models")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs/fast_sweep", help="training runs (reused)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where fast_sweep.{json,md} go")
    parser.add_argument("--train-only", action="store_true", help="train what is missing, measure nothing")
    parser.add_argument("--measure-only", action="store_true",
                        help="train nothing: candidates without a finished run are timed with random weights")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES),
                        help="a subset (default: all); measuring needs lraspp among them")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.repetitions < 1:
        parser.error("--jobs and --repetitions must be at least 1")
    if LRASPP not in args.candidates and not args.train_only:
        parser.error(f"--candidates: {LRASPP} is the reference every candidate is measured against")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    labels = [label for label in CANDIDATES if label in args.candidates]
    args.runs = shown_path(args.runs)
    missing = [label for label in labels
               if not (run_dir(config(overrides(label, args.runs, args.smoke))) / "test.json").exists()]
    failed = [] if args.measure_only else train([overrides(label, args.runs, args.smoke) for label in missing],
                                                args.jobs, "cpu")
    if failed:
        sys.exit(f"{len(failed)} trainings failed; see {', '.join(failed)}")
    if args.train_only:
        return 0
    rows, latency = measure(labels, args.runs, args.smoke, args.repetitions)
    chosen = pick(rows)
    size = SMOKE_SIZE if args.smoke else SIZE
    cfg = config(overrides(LRASPP, args.runs, args.smoke))
    result = {"command": " ".join(["python -m bench.fast_sweep", *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe(), "budget": [*BUDGET, *(SMOKE if args.smoke else [])],
              "train_size": f"{cfg.epochs} epochs x {cfg.iters_per_epoch} iterations x batch {cfg.batch_size} at "
                            f"{cfg.data.height}x{cfg.data.width}",
              "latency_size": f"{size[0]}x{size[1]}", "latency": latency, "rows": rows,
              "chosen": chosen["label"] if chosen else None, "minutes": (time.perf_counter() - started) / 60}
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_results(args.out / "fast_sweep", result, markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
