"""Binarized against float with the same budget, several seeds a row, scored on held-out scenes.

    python -m bench.training --run [--seeds 3] [--jobs 2] [--device cpu|cuda] [--rows LABEL ...]
    python -m bench.training                        # the table from the runs already in runs/bench_training
    python -m bench.training --run --smoke          # 2 rows x 2 seeds x a few steps: checks the mechanics only
    python -m bench.training --run iters_per_epoch=8    # key=value overrides of every row (a smaller budget)

Every row is config/train/tiny_synthetic.yaml (720 steps of batch 8 at 128x256) with its overrides;
each (row, seed) is its own process with one torch thread, `--jobs` of them at once (on CPU each
pinned to its own share of the cores; on CUDA all share the GPU, the DataLoader workers of the
config feed each). best.pt is chosen on the validation scenes and scored once on the test scenes
(another seed of scenes, never trained or selected on). Rows: the float baseline, the paper's
recipe as written (eq. 24 summed, lambda3 = 1e-4, Table 1's binary 3x3 stem and float 1x1
output), this project's mean-reduced regulariser, the float multi-stream stem as an option, and
the shipped recipe (irnet). Writes bench/training.md and bench/training.json (--smoke: under
runs/bench_training_smoke).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from bench.machine import describe, markdown_header, write_results
from bisegunet_training.config import load_config
from bisegunet_training.model import load_model_config
from bisegunet_training.schedule import PhaseSchedule
from bisegunet_training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/train/tiny_synthetic.yaml"
FLOAT = "float"
SUM = "loss.binary_reduction=sum"          # eq. 24 as written
# Table 1: the first layer is one 3x3 BinaryConv2D (the output 1x1 conv is float in every row)
BINARY_STEM = 'model_overrides=["stem_kernels=[3]","binary_parts=[stem,encoder,capacity,bottleneck,decoder]"]'
IRNET = "model_overrides=[weight_standardization=true]"
RUNS = {   # label -> overrides of CONFIG
    FLOAT: ["binarize=false"],
    "paper": [SUM, BINARY_STEM],
    "mean_regulariser": [BINARY_STEM],      # this project's variant: eq. 24 divided by the number of weights
    "float_stem": [SUM],                    # the paper's recipe with tiny's float multi-stream stem
    "irnet": [IRNET],                       # the shipped recipe (docs/training.md)
}
SMOKE_ROWS = [FLOAT, "paper"]
SMOKE = ["epochs=3", "iters_per_epoch=2", "batch_size=2", "data.height=64", "data.width=128", "data.train_size=16",
         "data.val_size=4", "data.test_size=4", "workers=0", "tensorboard=false"]
PAPER_GAP = 4.1     # the paper's Table 3: 73.1 FP32 vs 69.0 binarized mIoU at 512x1024


def run_name(label: str, seed: int | str) -> str:
    return f"{label}_seed{seed}"


def overrides(label: str, seed: int | str, out_dir: str, device: str, extra: list[str]) -> list[str]:
    return [*RUNS[label], f"seed={seed}", f"name={run_name(label, seed)}", f"out_dir={out_dir}", f"device={device}",
            *extra]


def command(args: list[str]) -> list[str]:
    return ["bisegunet-train", "--config", CONFIG, *args]


def config(args: list[str]) -> TrainConfig:
    return load_config(ROOT / CONFIG, TrainConfig, args)


def run_dir(cfg: TrainConfig) -> Path:
    return ROOT / cfg.out_dir / cfg.name


def train(jobs: list[list[str]], parallel: int, device: str) -> list[str]:
    """Each job (its overrides) as its own process with one torch thread, `parallel` at a time; on CPU
    each pinned to its own share of the cores. Logs beside each run (runs/.../NAME.log); returns the
    logs of the runs that failed."""
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // parallel)
    # one thread per run, OpenCV's too (its pool would otherwise take every core in each data worker)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")
    pending, running, failed = list(jobs), {}, []       # running: slot -> (process, log path)
    with tqdm(total=len(jobs), desc="training runs", unit="run") as progress:
        while pending or running:
            for slot in [s for s in range(parallel) if s not in running][:len(pending)]:
                args = pending.pop(0)
                cpus = cores[slot * share:(slot + 1) * share] or cores
                log_path = Path(f"{run_dir(config(args))}.log")
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with log_path.open("w") as log:
                    running[slot] = (subprocess.Popen(
                        [sys.executable, "-m", "bisegunet_training.train", *command(args)[1:], "--overwrite"], cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT, env=env,
                        preexec_fn=(lambda cpus=cpus: os.sched_setaffinity(0, cpus)) if device == "cpu" else None),
                        log_path)
            time.sleep(0.5)
            for slot, (proc, log_path) in list(running.items()):
                if proc.poll() is not None:
                    del running[slot]
                    progress.update()
                    if proc.returncode:
                        failed.append(str(log_path))
    return failed


def options(cfg: TrainConfig) -> str:
    """What was on, read from the run's configuration (not restated by hand)."""
    if not cfg.binarize:
        return "float throughout (same epochs, steps and learning-rate restarts)"
    model = load_model_config(cfg.model, cfg.model_overrides)
    p1, p2 = PhaseSchedule(cfg.epochs, tuple(cfg.phase_fractions), cfg.min_lr_ratio).boundaries
    distill = f"weight {cfg.distill_weight}, T {cfg.distill_temperature}" if cfg.distill_weight > 0 else "off"
    stem = "binary" if "stem" in model.binary_parts else "float"
    kernels = "x".join(map(str, model.stem_kernels))
    return (f"phases {p1}/{p2 - p1}/{cfg.epochs - p2}, {cfg.binarization_order.replace('_', ' ')}, "
            f"{model.estimator}, {stem} stem {kernels}, regulariser {cfg.loss.binary_reduction} "
            f"(lambda3 {cfg.loss.binary_weight:g}), distillation {distill}, "
            f"IR-Net {'on' if model.weight_standardization else 'off'}")


def run_result(label: str, seed: int, cfg: TrainConfig) -> dict:
    """One finished run: its test score (best.pt on the test scenes) and its validation history."""
    rows = [json.loads(line) for line in (run_dir(cfg) / "metrics.jsonl").read_text().splitlines()]
    test = json.loads((run_dir(cfg) / "test.json").read_text())
    return {"run": label, "seed": seed, "name": cfg.name, "epochs": len(rows),
            "minutes": sum(r["seconds"] for r in rows) / 60, "threads": rows[-1].get("threads"),
            "device": test.get("device"), "best_epoch": test["epoch"], "best_val_miou": test["val_miou_network_res"],
            "test_miou": test["test_miou"], "test_scenes": test["test_scenes"],
            "final_val_miou": rows[-1]["val_miou_network_res"],
            "phase_end_miou": {str(r["phase"]): r["val_miou_network_res"] for r in rows}}


def spread(values: list[float]) -> float | None:
    """Sample standard deviation; None for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def decimals(uncertainty: float | None) -> int:
    """Digits after the point that the uncertainty supports: its first significant digit, at most 2."""
    if not uncertainty:
        return 1
    return max(0, min(2, -math.floor(math.log10(uncertainty))))


def fmt(value: float, uncertainty: float | None) -> str:
    d = decimals(uncertainty)
    return f"{value:.{d}f}" + (f" ± {uncertainty:.{d}f}" if uncertainty is not None else " (one seed)")


def row_summary(runs: list[dict], float_runs: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds (in mIoU points), and the gap to float with the
    standard error of a difference of two means."""
    test = [100 * r["test_miou"] for r in runs]
    ref = [100 * r["test_miou"] for r in float_runs]
    sd, sd_ref = spread(test), spread(ref)
    gap_se = math.sqrt(sd**2 / len(test) + sd_ref**2 / len(ref)) if sd is not None and sd_ref is not None else None
    return {"seeds": [r["seed"] for r in runs], "test_miou_mean": statistics.mean(test), "test_miou_sd": sd,
            "test_miou_min": min(test), "test_miou_max": max(test),
            "best_val_miou_mean": statistics.mean(100 * r["best_val_miou"] for r in runs),
            "minutes_mean": statistics.mean(r["minutes"] for r in runs),
            "gap_points": statistics.mean(ref) - statistics.mean(test), "gap_standard_error": gap_se}


def finished_seeds(label: str, out_dir: str) -> list[int]:
    """Seeds of `label` whose run has scored its test split."""
    tails = [p.parent.name.removeprefix(run_name(label, "")) for p in (ROOT / out_dir).glob(f"{label}_seed*/test.json")]
    return sorted(int(t) for t in tails if t.isdigit())


def report(labels: list[str], out_dir: str, extra: list[str], invocation: str, stem: Path) -> str:
    runs = {label: [run_result(label, s, config(overrides(label, s, out_dir, "auto", extra)))
                    for s in finished_seeds(label, out_dir)] for label in labels}
    missing = [label for label in labels if not runs[label]]
    if missing:
        sys.exit(f"no finished run for {', '.join(missing)} in {out_dir}: train with --run --rows {' '.join(missing)}")
    summaries = {label: row_summary(runs[label], runs[FLOAT]) for label in labels}
    machine = describe()
    devices = sorted({str(r["device"]) for rs in runs.values() for r in rs})
    machine["training_devices"] = devices
    cfg = config(extra)
    lines = markdown_header("Training: binarized vs float, same budget, several seeds", invocation, machine)
    lines += [f"Runs on {', '.join(devices)}" + (f" ({machine['gpu']})" if machine.get("gpu") else "") +
              ", each its own process with one torch thread.", "",
              f"Data: synthetic street scenes at {cfg.data.height}x{cfg.data.width}, difficulty "
              f"{cfg.data.difficulty}, {cfg.epochs} epochs x {cfg.iters_per_epoch} iterations x batch "
              f"{cfg.batch_size}. best.pt is the best epoch on {cfg.data.val_size} validation scenes (once fully "
              f"binary; any epoch for float); it is scored once on {cfg.data.test_size} test scenes of another "
              "seed, never trained or selected on. mIoU in percent: mean ± sample standard deviation over "
              "seeds, shown to the digit the spread supports. Gap: float's mean minus the row's, ± the "
              "standard error of that difference. The paper's gap, "
              f"{PAPER_GAP} points, is its Table 3 on Cityscapes at 512x1024, not measured here.", "",
              "| run | options | command (seed K = 0, 1, ...) | seeds | test mIoU % | min - max | "
              "gap to float, points | within the paper's gap | best validation mIoU % (mean) | minutes a run (mean) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        s = summaries[label]
        shown = shlex.join(command(overrides(label, "K", out_dir, "/".join(devices), extra)))
        gap, within = ("", "") if label == FLOAT else (fmt(s["gap_points"], s["gap_standard_error"]),
                                                      "yes" if s["gap_points"] <= PAPER_GAP else "no")
        lines.append(f"| {label} | {options(config(overrides(label, 0, out_dir, 'auto', extra)))} | `{shown}` | "
                     f"{len(s['seeds'])} | {fmt(s['test_miou_mean'], s['test_miou_sd'])} | "
                     f"{s['test_miou_min']:.1f} - {s['test_miou_max']:.1f} | {gap} | {within} | "
                     f"{s['best_val_miou_mean']:.1f} | {s['minutes_mean']:.1f} |")
    lines += ["", "Every run:", "", "| run | seed | test mIoU % | best validation mIoU % (epoch) | final validation "
              "mIoU % | minutes | device |", "|---|---|---|---|---|---|---|"]
    for label in labels:
        for r in runs[label]:
            lines.append(f"| {label} | {r['seed']} | {100 * r['test_miou']:.1f} | {100 * r['best_val_miou']:.1f} "
                         f"({r['best_epoch'] + 1}) | {100 * r['final_val_miou']:.1f} | {r['minutes']:.1f} | "
                         f"{r['device']} |")
    lines.append("")
    budget = {"config": CONFIG, "height": cfg.data.height, "width": cfg.data.width, "epochs": cfg.epochs,
              "iters_per_epoch": cfg.iters_per_epoch, "batch_size": cfg.batch_size, "overrides": extra}
    return write_results(stem, {"machine": machine, "budget": budget, "rows": summaries,
                                "runs": [r for rs in runs.values() for r in rs]}, "\n".join(lines))


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="train the rows first")
    parser.add_argument("--seeds", type=int, help="seeds per row, 0 .. N-1 (default 3; --smoke: 2)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each its own process with one thread")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where each run trains")
    parser.add_argument("--workers", type=int, help="DataLoader workers per run (default: the config's)")
    parser.add_argument("--rows", nargs="+", choices=list(RUNS), help="rows (default: all; --smoke: two)")
    parser.add_argument("--smoke", action="store_true", help="a few steps at 64x128, under runs/bench_training_smoke")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="training config overrides for every row, e.g. iters_per_epoch=8 (shown in the table)")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.smoke else 3)
    if args.jobs < 1 or seeds < 1:
        parser.error("--jobs and --seeds must be at least 1")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be at least 0")
    labels = args.rows or (SMOKE_ROWS if args.smoke else list(RUNS))
    if FLOAT not in labels:
        labels = [FLOAT, *labels]            # every gap is to float
    out_dir = "runs/bench_training_smoke" if args.smoke else "runs/bench_training"
    extra = [*(SMOKE if args.smoke else []), *([f"workers={args.workers}"] if args.workers is not None else []),
             *args.overrides]
    device = args.device
    if device == "auto":
        device = "cuda" if gpu_name() else "cpu"
    if device == "cuda" and not gpu_name():
        parser.error("--device cuda: CUDA is not available on this machine")
    failed = []
    if args.run:
        jobs = [overrides(label, seed, out_dir, device, extra) for seed in range(seeds) for label in labels]
        failed = train(jobs, args.jobs, device)
        if failed:   # the table still shows every run that finished
            print(f"{len(failed)} of {len(jobs)} runs failed; see {', '.join(failed)}", file=sys.stderr)
    invocation = " ".join(["python -m bench.training", *(argv if argv is not None else sys.argv[1:])])
    stem = ROOT / out_dir / "training" if args.smoke else ROOT / "bench/training"
    print(report(labels, out_dir, extra, invocation, stem))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
