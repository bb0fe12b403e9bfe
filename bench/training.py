"""Binarized against float with the same budget, several seeds a row, scored on held-out scenes.

    python -m bench.training --run [--seeds 3] [--jobs 2] [--device cpu|cuda] [--rows LABEL ...]
    python -m bench.training                        # the table from the runs already finished
    python -m bench.training --record               # the finished runs into bench/training.runs.json
    python -m bench.training --run --smoke          # 2 rows x 2 seeds x a few steps: checks the mechanics only
    python -m bench.training --run iters_per_epoch=8    # key=value overrides of every row (a smaller budget)

Every row is config/train/tiny_synthetic.yaml (720 steps of batch 8 at 128x256) with its overrides;
each (row, seed) is its own process with one torch thread, `--jobs` of them at once (on CPU each
pinned to its own share of the cores; on CUDA all share the GPU, the DataLoader workers of the
config feed each). best.pt is chosen on the validation scenes and scored once on the test scenes
(another seed of scenes, never trained or selected on).

Rows (RUNS): each binarized row names its float reference, the float row with the same model and
budget, so that a pair differs in binarization only; neighbouring binarized rows differ in one
thing each (the estimator, the batch, the regulariser's reduction, the stem, IR-Net), so every
change of the recipe is measured alone. `paper` is the paper's recipe as written (eq. 22's sign
with a straight-through estimator, eq. 24 summed, lambda3 = 1e-4, Table 1's binary 3x3 stem and
float 1x1 output, Table 10's batch 16); `irnet` is the shipped recipe.

Resumable across sittings (bench/ledger.py): after training, and on `--record` at any time, every
finished run's result goes to bench/training.runs.json (commit it: runs/ does not outlive a sitting).
A (row, seed) whose run has finished with the command this script would give it now
(the command its test.json copies from best.pt, the device aside) is not trained again, and one whose run is gone
from disk keeps its result from the previous table (bench/training.json) or the ledger when the
command and the training scenes' seed recorded there are the same (runs recorded before the scenes followed
the run's seed are trained again). Writes bench/training.md and bench/training.json (--smoke: under
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
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.ledger import command_key, ledger_path, read_ledger, write_ledger
from bench.machine import cpu_model, describe, markdown_header, write_results
from bisegunet_training.config import load_config
from bisegunet_training.data import train_scene_seed
from bisegunet_training.model import load_model_config
from bisegunet_training.schedule import PhaseSchedule
from bisegunet_training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/train/tiny_synthetic.yaml"
FLOAT = "float"
SUM = "loss.binary_reduction=sum"          # eq. 24 as written
# Table 1: the first layer is one 3x3 BinaryConv2D (the output 1x1 conv is float in every row)
BINARY_STEM = 'model_overrides=["stem_kernels=[3]","binary_parts=[stem,encoder,capacity,bottleneck,decoder]"]'
# the same with eq. 22's estimator: sign forward, straight-through (clipped identity) backward
BINARY_STEM_STE = ('model_overrides=["stem_kernels=[3]","binary_parts=[stem,encoder,capacity,bottleneck,decoder]",'
                   '"estimator=ste"]')
IRNET = "model_overrides=[weight_standardization=true]"
BATCH16 = "batch_size=16"                  # Table 10 (same steps: twice the images of a batch-8 row)


@dataclass(frozen=True)
class Row:
    """One row of the table: its overrides of CONFIG, its float reference (the float row with the same
    model and budget; None for a float row) and what it isolates."""
    overrides: list[str]
    reference: str | None
    about: str


# The estimator, the regulariser's reduction and IR-Net act only on binarized layers: a float row
# with a row's model and budget is that row's reference whatever those settings say.
RUNS = {   # label -> Row
    FLOAT: Row(["binarize=false"], None, "tiny's float stem 3x5x7, never binarized: reference of the float-stem rows"),
    "float_3x3_stem": Row(["binarize=false", BINARY_STEM], None,
                             "Table 1's 3x3 stem, never binarized: reference of the binary-stem rows at batch 8"),
    "float_paper": Row(["binarize=false", BINARY_STEM, BATCH16], None,
                       "the same at Table 10's batch 16: reference of `paper`"),
    "paper": Row([SUM, BINARY_STEM_STE, BATCH16], "float_paper",
                 "the paper as written: sign with STE (eq. 22), eq. 24 summed, binary 3x3 stem, batch 16 (Table "
                 "10); scaled like every row (tiny widths, 128x256 synthetic scenes, 18 epochs)"),
    "paper_batch8": Row([SUM, BINARY_STEM_STE], "float_3x3_stem", "`paper` at batch 8: isolates the batch"),
    "paper_approx_sign": Row([SUM, BINARY_STEM], "float_3x3_stem",
                             "`paper_batch8` with approx_sign: isolates the estimator (the `paper` row before "
                             "issue 26)"),
    "mean_regulariser": Row([BINARY_STEM], "float_3x3_stem",
                            "`paper_approx_sign` with eq. 24 divided by the number of weights: isolates the reduction"),
    "float_stem": Row([SUM], FLOAT, "`paper_approx_sign` with tiny's float stem 3x5x7: isolates the stem"),
    "float_stem_mean": Row([], FLOAT, "`float_stem` with the mean regulariser (the config as it is): isolates the "
                                      "reduction"),
    "float_stem_irnet": Row([SUM, IRNET], FLOAT, "`float_stem` with IR-Net: isolates IR-Net"),
    "irnet": Row([IRNET], FLOAT, "the shipped recipe: `float_stem_mean` with IR-Net, `float_stem_irnet` with the mean "
                                 "regulariser"),
}
SMOKE_ROWS = [FLOAT, "float_3x3_stem", "paper_approx_sign"]
SMOKE = ["epochs=3", "iters_per_epoch=2", "batch_size=2", "data.height=64", "data.width=128", "data.train_size=16",
         "data.val_size=4", "data.test_size=4", "workers=0", "tensorboard=false"]
# The paper's Table 3 (quoted, not measured): FP32 and binarized mIoU % on Cityscapes at 512x1024
PAPER = {"float_miou": 73.1, "binary_miou": 69.0}
PAPER_RELATIVE_GAP = (PAPER["float_miou"] - PAPER["binary_miou"]) / PAPER["float_miou"]
CONFIDENCE = 0.95


def run_name(label: str, seed: int | str) -> str:
    return f"{label}_seed{seed}"


def overrides(label: str, seed: int | str, out_dir: str, device: str, extra: list[str]) -> list[str]:
    return [*RUNS[label].overrides, f"seed={seed}", f"name={run_name(label, seed)}", f"out_dir={out_dir}",
            f"device={device}", *extra]


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
    model = load_model_config(cfg.model, cfg.model_overrides)
    kernels = "x".join(map(str, model.stem_kernels))
    if not cfg.binarize:
        return (f"float throughout (same epochs, steps and learning-rate restarts), stem {kernels}, "
                f"batch {cfg.batch_size}")
    p1, p2 = PhaseSchedule(cfg.epochs, tuple(cfg.phase_fractions), cfg.min_lr_ratio).boundaries
    distill = f"weight {cfg.distill_weight}, T {cfg.distill_temperature}" if cfg.distill_weight > 0 else "off"
    stem = "binary" if "stem" in model.binary_parts else "float"
    return (f"phases {p1}/{p2 - p1}/{cfg.epochs - p2}, {cfg.binarization_order.replace('_', ' ')}, "
            f"{model.estimator}, {stem} stem {kernels}, batch {cfg.batch_size}, regulariser "
            f"{cfg.loss.binary_reduction} (lambda3 {cfg.loss.binary_weight:g}), distillation {distill}, "
            f"IR-Net {'on' if model.weight_standardization else 'off'}")


def same_run(recorded: str, wanted: str) -> bool:
    """Two commands that train the same run (bench.ledger.command_key)."""
    return command_key(recorded) == command_key(wanted)


def finished_on_disk(args: list[str]) -> bool:
    """The run of `args` has scored its test split and its test.json records this very command and the training
    scenes' seed this code draws (a test.json written before the trainer recorded them: not on disk, so taken
    from the earlier record or retrained)."""
    cfg = config(args)
    folder = run_dir(cfg)
    if not (folder / "test.json").is_file() or not (folder / "best.pt").is_file():
        return False
    test = json.loads((folder / "test.json").read_text())
    return test.get("train_scene_seed", "unrecorded") == scene_seed(cfg) and \
        same_run(test.get("command", ""), shlex.join(command(args)))


def run_result(label: str, seed: int, args: list[str]) -> dict:
    """One finished run: its test score (best.pt on the test scenes), its validation history and command."""
    cfg = config(args)
    rows = [json.loads(line) for line in (run_dir(cfg) / "metrics.jsonl").read_text().splitlines()]
    test = json.loads((run_dir(cfg) / "test.json").read_text())
    return {"run": label, "seed": seed, "name": cfg.name, "train_scene_seed": test["train_scene_seed"],
            "epochs": len(rows), "minutes": sum(r["seconds"] for r in rows) / 60, "threads": rows[-1].get("threads"),
            "device": test.get("device"), "best_epoch": test["epoch"], "best_val_miou": test["val_miou_network_res"],
            "test_miou": test["test_miou"], "test_scenes": test["test_scenes"],
            "final_val_miou": rows[-1]["val_miou_network_res"],
            "phase_end_miou": {str(r["phase"]): r["val_miou_network_res"] for r in rows},
            "command": test["command"], "cpu": cpu_model()}


def scene_seed(cfg: TrainConfig) -> int | None:
    """The training scenes' seed this code draws for `cfg` (bisegunet_training.data.train_scene_seed)."""
    return train_scene_seed(cfg.data.kind, cfg.data.seed, cfg.seed)


def finished_result(label: str, seed: int, args: list[str], previous: list[dict]) -> dict | None:
    """The result of the run of `args`: from disk where it finished there with this command, else kept from
    `previous` (results recorded earlier) where the command and the training scenes' seed recorded are this
    run's; None where it has to be trained."""
    if finished_on_disk(args):
        return run_result(label, seed, args)
    wanted, data = shlex.join(command(args)), scene_seed(config(args))
    kept = [r for r in previous if r["seed"] == seed and same_run(r.get("command", ""), wanted)
            and r.get("train_scene_seed", "unrecorded") == data]
    return {**kept[0], "run": label, "name": config(args).name} if kept else None


def collect(labels: list[str], seeds: range, out_dir: str, extra: list[str], previous: list[dict]) -> dict:
    """label -> its finished runs (finished_result), `previous` being the runs of the last table."""
    runs = {}
    for label in labels:
        found = [finished_result(label, seed, overrides(label, seed, out_dir, "auto", extra), previous)
                 for seed in seeds]
        runs[label] = [r for r in found if r is not None]
    return runs


def to_run(labels: list[str], seeds: range, out_dir: str, device: str, extra: list[str], previous: list[dict]
           ) -> list[list[str]]:
    """The jobs (their overrides) whose result is neither on disk nor in the previous table."""
    found = collect(labels, seeds, out_dir, extra, previous)
    done = {(label, r["seed"]) for label, rs in found.items() for r in rs}
    return [overrides(label, seed, out_dir, device, extra) for seed in seeds for label in labels
            if (label, seed) not in done]


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


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile for p > 0.5: bisection on its CDF, integrated by Simpson's rule (no scipy)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float, steps: int = 1000) -> float:
        h = x / steps
        pdf = [math.exp(log_c - (df + 1) / 2 * math.log1p((i * h) ** 2 / df)) for i in range(steps + 1)]
        return 0.5 + h / 3 * (pdf[0] + pdf[-1] + 4 * sum(pdf[1:-1:2]) + 2 * sum(pdf[2:-1:2]))

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def gap_to(test: list[float], ref: list[float]) -> dict:
    """The gap of a binarized row to its float reference (mIoU points, lists over seeds): in points and
    relative to the float mean, each with its standard error (the relative one by the delta method of
    1 - B/F), and the CONFIDENCE interval of the relative gap with Welch's degrees of freedom; the
    verdict against the paper's relative gap follows from that interval."""
    b, f = statistics.mean(test), statistics.mean(ref)
    gap = {"gap_points": f - b, "relative_gap": (f - b) / f, "gap_standard_error": None,
           "relative_gap_standard_error": None, "relative_gap_interval": None, "degrees_of_freedom": None,
           "verdict": "undecided (one seed)"}
    if len(test) < 2 or len(ref) < 2:
        return gap
    vb, vf = statistics.variance(test) / len(test), statistics.variance(ref) / len(ref)   # squared standard errors
    se_rel = (b / f) * math.sqrt(vb / b**2 + vf / f**2)
    df = (vb + vf) ** 2 / (vb**2 / (len(test) - 1) + vf**2 / (len(ref) - 1)) if vb + vf > 0 else math.inf
    half = (t_quantile(0.5 + CONFIDENCE / 2, df) if math.isfinite(df) else 0.0) * se_rel
    low, high = gap["relative_gap"] - half, gap["relative_gap"] + half
    verdict = ("narrower than the paper's" if high < PAPER_RELATIVE_GAP else
               "wider than the paper's" if low > PAPER_RELATIVE_GAP else "undecided")
    return {**gap, "gap_standard_error": math.sqrt(vb + vf), "relative_gap_standard_error": se_rel,
            "relative_gap_interval": [low, high], "degrees_of_freedom": df, "verdict": verdict}


def row_summary(label: str, runs: list[dict], reference: list[dict] | None) -> dict:
    """Mean and sample standard deviation over seeds (in mIoU points); for a binarized row, its gap to
    its float reference (gap_to)."""
    test = [100 * r["test_miou"] for r in runs]
    summary = {"seeds": [r["seed"] for r in runs], "test_miou_mean": statistics.mean(test),
               "test_miou_sd": spread(test), "test_miou_min": min(test), "test_miou_max": max(test),
               "best_val_miou_mean": statistics.mean(100 * r["best_val_miou"] for r in runs),
               "minutes_mean": statistics.mean(r["minutes"] for r in runs), "reference": RUNS[label].reference,
               "about": RUNS[label].about}
    if reference:
        summary.update(gap_to(test, [100 * r["test_miou"] for r in reference]))
    return summary


def percent(value: float, uncertainty: float | None) -> str:
    return fmt(100 * value, 100 * uncertainty if uncertainty is not None else None) + " %"


def gap_cells(s: dict) -> list[str]:
    """Gap in points, relative gap, its interval and the verdict; blank for a float row or a missing reference."""
    if "gap_points" not in s:
        return ["", "", "", "" if s["reference"] is None else f"no run of `{s['reference']}` yet"]
    interval = s["relative_gap_interval"]
    shown = f"{100 * interval[0]:.1f} to {100 * interval[1]:.1f} %" if interval else ""
    return [fmt(s["gap_points"], s["gap_standard_error"]), percent(s["relative_gap"], s["relative_gap_standard_error"]),
            shown, s["verdict"]]


def previous_runs(stem: Path) -> list[dict]:
    """The runs of the table last written to STEM.json (none before the first), each with the CPU it
    ran on (from that file's machine where the run lacks one), and those recorded in STEM.runs.json
    (bench/ledger.py) since."""
    file = stem.with_suffix(".json")
    recorded = read_ledger(ledger_path(stem))      # first: newer than the table where both hold a run
    if not file.is_file():
        return recorded
    previous = json.loads(file.read_text())
    return recorded + [{"cpu": previous.get("machine", {}).get("cpu"), **r} for r in previous.get("runs", [])]


def report(labels: list[str], out_dir: str, extra: list[str], invocation: str, stem: Path, seeds: range) -> str:
    runs = collect(labels, seeds, out_dir, extra, previous_runs(stem))
    shown_labels = [label for label in labels if runs[label]]
    if not shown_labels:
        sys.exit(f"no finished run in {out_dir} or {stem.with_suffix('.json')}: train with --run")
    summaries = {label: row_summary(label, runs[label], runs.get(RUNS[label].reference)) for label in shown_labels}
    machine = describe()
    devices = sorted({str(r["device"]) for rs in runs.values() for r in rs})
    machine["training_devices"] = devices
    cfg = config(extra)
    paper_gap = PAPER["float_miou"] - PAPER["binary_miou"]
    lines = markdown_header("Training: binarized vs float, same budget, several seeds", invocation, machine)
    cpus = statistics.multimode(r.get("cpu") for rs in runs.values() for r in rs)
    lines += [f"Runs on {', '.join(devices)}" + (f" ({machine['gpu']})" if machine.get("gpu") else "") +
              ", each its own process with one torch thread; the CPU of each run is in the table of every run "
              f"(most on {', '.join(map(str, cpus))}; the machine above is the one that wrote this table).", "",
              f"Data: synthetic street scenes at {cfg.data.height}x{cfg.data.width}, difficulty "
              f"{cfg.data.difficulty}, {cfg.epochs} epochs x {cfg.iters_per_epoch} iterations x the row's batch. "
              f"best.pt is the best epoch on {cfg.data.val_size} validation scenes (once fully "
              f"binary; any epoch for float); it is scored once on {cfg.data.test_size} test scenes of another "
              "seed, never trained or selected on. mIoU in percent: mean ± sample standard deviation over "
              "seeds, shown to the digit the spread supports.", "",
              "Each binarized row is compared with its float reference (the float row with the same model and "
              "budget: the estimator, the regulariser and IR-Net act only on binarized layers). Gap: the "
              "reference's mean minus the row's, ± the standard error of that difference. Relative gap: gap / "
              "the reference's mean, ± its standard error (delta method), and its "
              f"{100 * CONFIDENCE:.0f} % interval (Student's t with Welch's degrees of freedom; with 3 seeds a "
              "row it is wide). Verdict: the interval against the paper's relative gap, "
              f"{paper_gap:.1f} / {PAPER['float_miou']} = {100 * PAPER_RELATIVE_GAP:.1f} % (its Table 3 on "
              "Cityscapes at 512x1024, quoted, not measured here): narrower or wider when the whole interval "
              "lies on one side, undecided otherwise. Relative, because a point at this table's scores and a "
              f"point at the paper's {PAPER['float_miou']} % are not the same size.", "",
              "| run | what it isolates | options | command (seed K = 0, 1, ...) | seeds | test mIoU % | min - max | "
              f"float reference | gap, points | relative gap | {100 * CONFIDENCE:.0f} % interval | against the "
              "paper's relative gap | best validation mIoU % (mean) | minutes a run (mean) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label in shown_labels:
        s = summaries[label]
        shown = shlex.join(command(overrides(label, "K", out_dir, "/".join(devices), extra)))
        lines.append(f"| {label} | {s['about']} | {options(config(overrides(label, 0, out_dir, 'auto', extra)))} | "
                     f"`{shown}` | {len(s['seeds'])} | {fmt(s['test_miou_mean'], s['test_miou_sd'])} | "
                     f"{s['test_miou_min']:.1f} - {s['test_miou_max']:.1f} | {s['reference'] or ''} | "
                     f"{' | '.join(gap_cells(s))} | {s['best_val_miou_mean']:.1f} | {s['minutes_mean']:.1f} |")
    missing = [label for label in labels if not runs[label]]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)} (`python -m bench.training --run` trains what is missing)."]
    lines += ["", "Every run (the command is the one its best.pt records):", "",
              "| run | seed | test mIoU % | best validation mIoU % (epoch) | final validation mIoU % | minutes | "
              "device | CPU | command |", "|---|---|---|---|---|---|---|---|---|"]
    for label in shown_labels:
        for r in runs[label]:
            lines.append(f"| {label} | {r['seed']} | {100 * r['test_miou']:.1f} | {100 * r['best_val_miou']:.1f} "
                         f"({r['best_epoch'] + 1}) | {100 * r['final_val_miou']:.1f} | {r['minutes']:.1f} | "
                         f"{r['device']} | {r.get('cpu')} | `{r['command']}` |")
    lines.append("")
    budget = {"config": CONFIG, "height": cfg.data.height, "width": cfg.data.width, "epochs": cfg.epochs,
              "iters_per_epoch": cfg.iters_per_epoch, "batch_size": cfg.batch_size, "overrides": extra}
    return write_results(stem, {"machine": machine, "budget": budget, "paper": PAPER,
                                "paper_relative_gap": PAPER_RELATIVE_GAP, "confidence": CONFIDENCE,
                                "rows": summaries, "runs": [r for rs in runs.values() for r in rs]},
                         "\n".join(lines))


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="train the (row, seed) runs not finished yet first")
    parser.add_argument("--seeds", type=int, help="seeds per row, 0 .. N-1 (default 3; --smoke: 2)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each its own process with one thread")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where each run trains")
    parser.add_argument("--workers", type=int, help="DataLoader workers per run (default: the config's)")
    parser.add_argument("--rows", nargs="+", choices=list(RUNS), help="rows (default: all; --smoke: three)")
    parser.add_argument("--smoke", action="store_true", help="a few steps at 64x128, under runs/bench_training_smoke")
    parser.add_argument("--record", action="store_true",
                        help="only record the finished runs in bench/training.runs.json (before a sitting ends; "
                             "the table is left as it is)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="training config overrides for every row, e.g. iters_per_epoch=8 (shown in the table)")
    args = parser.parse_args(argv)
    seeds = range(args.seeds or (2 if args.smoke else 3))
    if args.jobs < 1 or not seeds:
        parser.error("--jobs and --seeds must be at least 1")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be at least 0")
    labels = args.rows or (SMOKE_ROWS if args.smoke else list(RUNS))
    references = [RUNS[label].reference for label in labels if RUNS[label].reference]
    labels = [*dict.fromkeys(r for r in references if r not in labels), *labels]   # every gap has its reference
    out_dir = "runs/bench_training_smoke" if args.smoke else "runs/bench_training"
    extra = [*(SMOKE if args.smoke else []), *([f"workers={args.workers}"] if args.workers is not None else []),
             *args.overrides]
    stem = ROOT / out_dir / "training" if args.smoke else ROOT / "bench/training"
    device = args.device
    if device == "auto":
        device = "cuda" if gpu_name() else "cpu"
    if device == "cuda" and not gpu_name():
        parser.error("--device cuda: CUDA is not available on this machine")
    failed = []
    if args.record or args.run:
        jobs = to_run(labels, seeds, out_dir, device, extra, previous_runs(stem)) if args.run else []
        print(f"{len(jobs)} runs to train; the others are finished", file=sys.stderr)
        failed = train(jobs, args.jobs, device) if jobs else []
        finished = collect(labels, seeds, out_dir, extra, previous_runs(stem))
        write_ledger(ledger_path(stem), [r for rs in finished.values() for r in rs])
        if args.record:
            return 0
        if failed:   # the table still shows every run that finished
            print(f"{len(failed)} of {len(jobs)} runs failed; see {', '.join(failed)}", file=sys.stderr)
    invocation = " ".join(["python -m bench.training", *(argv if argv is not None else sys.argv[1:])])
    print(report(labels, out_dir, extra, invocation, stem, seeds))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
