"""Accuracy against CPU latency: BiSegUNet's presets and torchvision's lightweight models, one command.

    nice -n 19 python -m bench.pareto [--seeds 3] [--jobs 1] [--repetitions 7]   # hours on 2 cores; resumable
    python -m bench.pareto --record               # the finished trainings into bench/pareto.runs.json
    python -m bench.pareto --smoke --out DIR [--jobs 2]   # the same path at toy sizes, in --jobs workers (CI)

Rows: LR-ASPP and DeepLabV3 with MobileNetV3-Large (torchvision's architectures, random weights,
trained from scratch: nothing can be downloaded here), and BiSegUNet `fast`, `tiny` and `small`,
each float (binarize=false) and binarized. Every (row, seed) gets the same training:
config/train/tiny_synthetic.yaml (synthetic street scenes, augmentation, CE + Dice, Adam and the
phase-restarting cosine schedule) with the same epochs x iterations x batch at the same resolution,
each run its own process with one torch thread (bench/training.py's runner). Accuracy: test-split
mIoU of best.pt (test.json), mean ± sample sd over seeds.

Resumable across sittings: every finished training's result (score, command, training scenes' seed)
is recorded in OUT/pareto.runs.json after the trainings, and by `--record` at any time (commit it:
runs/ does not outlive a sitting). A (row, seed) finished on disk with this command, or recorded
there with it, is not trained again.

Then parameters and real multiply-adds (training/profile.py) at 512x1024; each row's network with
random weights (latency does not depend on their values, so it needs no checkpoint) through
bisegunet-export's graph (uint8 pixels in, labels and confidence out) at 512x1024, FP32 and INT8
(bisegunet-quantize), built --jobs at a time in worker processes, which end before the graphs are
timed in this one process on ONNX Runtime's CPU provider with the repetitions interleaved
(bench/graph_latency.py). Writes OUT/pareto.{json,md,png} and, for the full run, README's block
between the pareto markers.
"""
from __future__ import annotations

import argparse
import gc
import logging
import math
import multiprocessing
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import repeat
from pathlib import Path

import torch

from bench.backends import random_state
from bench.graph_latency import export_model, interleaved_latency
from bench.ledger import ledger_path, read_ledger, write_ledger
from bench.machine import describe, markdown_header, write_results
from bench.pareto_models import ENTRIES, LRASPP, Entry
from bench.training import CONFIG, command, config, finished_result, spread, train
from bisegunet_training.model import load_model_config
from bisegunet_training.model.torchvision_models import import_torchvision
from bisegunet_training.profile import profile
from bisegunet_training.quantize import quantize
from bisegunet_training.schedule import PhaseSchedule
from bisegunet_training.train import Trainer

log = logging.getLogger(__name__)
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- pareto:begin -->", "<!-- pareto:end -->"
GOAL_ROWS = ("fast_float", "fast_binary")     # the goal: these against LR-ASPP


@dataclass(frozen=True)
class Budget:
    """What every model gets: training (the same for all), then timing."""

    overrides: tuple[str, ...]          # of CONFIG, for every run
    latency_size: tuple[int, int]
    calibration_frames: int             # INT8 calibration (latency does not depend on the values)
    seeds: int
    repetitions: int


FULL = Budget(("iters_per_epoch=8", "workers=1", "tensorboard=false"), (512, 1024), 8, 3, 7)
SMOKE = Budget(("epochs=3", "iters_per_epoch=1", "batch_size=2", "data.height=64", "data.width=128",
                "data.val_size=2", "data.test_size=2", "workers=0", "tensorboard=false"), (64, 128), 1, 2, 2)


def overrides(entry: Entry, seed: int | str, budget: Budget, runs: Path) -> list[str]:
    return [f"model={entry.model}", f"binarize={str(entry.binarize).lower()}", *budget.overrides, f"seed={seed}",
            f"name={entry.key}_seed{seed}", f"out_dir={runs}", "device=cpu"]


def outcomes(budget: Budget, runs: Path, recorded: list[dict]) -> list[tuple[list[str], dict | None]]:
    """Every (row, seed) training's overrides and its result (bench.training.finished_result: on disk or in
    `recorded`; None where it has to be trained), seed by seed (seed 0 of every row first)."""
    jobs = [(e, seed, overrides(e, seed, budget, runs)) for seed in range(budget.seeds) for e in ENTRIES]
    return [(args, finished_result(e.key, seed, args, recorded)) for e, seed, args in jobs]


def missing_runs(budget: Budget, runs: Path, recorded: list[dict]) -> list[list[str]]:
    return [args for args, result in outcomes(budget, runs, recorded) if result is None]


def finished(budget: Budget, runs: Path, recorded: list[dict]) -> list[dict]:
    return [result for _, result in outcomes(budget, runs, recorded) if result is not None]


def workers(parallel: int) -> ProcessPoolExecutor:
    """`parallel` spawned worker processes, logging as this one, with one torch thread each when there are
    several."""
    return ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"), initializer=worker_setup,
                               initargs=(1 if parallel > 1 else torch.get_num_threads(),))


def worker_setup(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def train_in_workers(jobs: list[list[str]], pool: ProcessPoolExecutor) -> list[str]:
    """--smoke: each toy run in-process in one of the pool's workers, which outlive their runs (a process
    start-up costs more than a toy run)."""
    list(pool.map(train_one, jobs))
    return []


def train_one(args: list[str]) -> None:
    Trainer(config(args), command=shlex.join(command(args))).fit()
    gc.collect()          # its DataLoader goes before the next run


def accuracy(entry: Entry, budget: Budget, runs: Path, recorded: list[dict]) -> dict:
    """Test mIoU (percent) of every seed's best.pt: mean, sample sd, the values; mean training minutes."""
    results = [finished_result(entry.key, seed, overrides(entry, seed, budget, runs), recorded)
               for seed in range(budget.seeds)]
    values = [100 * r["test_miou"] for r in results]
    return {"test_miou": {"mean": statistics.mean(values), "sd": spread(values), "values": values},
            "train_minutes": statistics.mean(r["minutes"] for r in results),
            "command": shlex.join(command(overrides(entry, "K", budget, runs)))}


def size(entry: Entry, height: int, width: int) -> dict:
    counted = profile(load_model_config(entry.model), height, width)
    memory = counted["weight_memory_mb"]
    return {"parameters": counted["parameters"]["total"], "real_gflops": counted["real_gflops"],
            "weight_memory_mb": memory["packed_1bit"] if entry.binarize else memory["fp32"],
            "weight_memory_kind": "packed 1-bit" if entry.binarize else "fp32"}


def built_graphs(budget: Budget, pool: ProcessPoolExecutor, folder: Path) -> dict[str, tuple[Path, Path]]:
    """Every row's FP32 and CPU INT8 graphs (row_graphs), built in the pool's workers."""
    return dict(zip([e.key for e in ENTRIES], pool.map(row_graphs, ENTRIES, repeat(folder), repeat(budget))))


def latency(graphs: dict[str, tuple[Path, Path]], repetitions: int) -> dict:
    """The FP32 graphs timed interleaved with each other in this process, then the INT8 ones (fewer sessions
    held at once)."""
    return {precision: interleaved_latency({key: pair[i] for key, pair in graphs.items()}, repetitions)
            for i, precision in enumerate(("fp32", "int8"))}


def row_graphs(entry: Entry, folder: Path, budget: Budget) -> tuple[Path, Path]:
    """One row's network with random weights (latency does not depend on their values) through
    bisegunet-export's graph at the latency size, and its CPU INT8 graph."""
    height, width = budget.latency_size
    fp32 = export_model(*random_state(entry.model, binarized=entry.binarize), folder / f"{entry.key}.onnx", height,
                        width)
    return fp32, quantize(fp32, fp32.with_suffix(".int8-cpu.onnx"), frames=budget.calibration_frames, target="cpu")


def goal(rows: dict[str, dict], timings: dict) -> list[dict]:
    """The issue's goal for each `fast` row: FP32 latency <= LR-ASPP's in this run, and mean mIoU above
    LR-ASPP's by more than the sum of the two standard deviations."""
    ref = rows[LRASPP]["test_miou"]
    ref_ms = timings["fp32"]["ms"][LRASPP]["median"]
    out = []
    for key in GOAL_ROWS:
        miou, ms = rows[key]["test_miou"], timings["fp32"]["ms"][key]["median"]
        margin, gain = ref["sd"] + miou["sd"], miou["mean"] - ref["mean"]     # seeds >= 2: sds exist
        out.append({"row": key, "fp32_ms": ms, "lraspp_fp32_ms": ref_ms, "latency_met": ms <= ref_ms,
                    "miou_gain": gain, "combined_sd": margin, "miou_met": gain > margin,
                    "met": ms <= ref_ms and gain > margin})
    return out


def num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def mean_sd(s: dict) -> str:
    d = max(0, min(2, -math.floor(math.log10(s["sd"])))) if s["sd"] else 1
    return f"{s['mean']:.{d}f}" + (f" ± {s['sd']:.{d}f}" if s["sd"] is not None else " (one seed)")


def table(result: dict) -> list[str]:
    """The generated table and the goal's verdict: the same lines in pareto.md and README."""
    rows, timings, budget = result["rows"], result["latency"], result["budget"]
    size_text = f"{budget['latency_size'][0]}x{budget['latency_size'][1]}"
    ref = timings["fp32"]["ms"][LRASPP]["median"]
    lines = [f"| model | params (M) | real GFLOPs {size_text} | weights (MB) | test mIoU % (mean ± sd, "
             f"{budget['seeds']} seeds) | FP32 ms {size_text} median (min-max) | INT8 ms median (min-max) | "
             "FP32 / LR-ASPP | train min |", "|---|---|---|---|---|---|---|---|---|"]
    for e in ENTRIES:
        r = rows[e.key]
        fp32, int8 = timings["fp32"]["ms"][e.key], timings["int8"]["ms"][e.key]
        lines.append(f"| {e.label} | {r['parameters'] / 1e6:.2f} | {num(r['real_gflops'])} | "
                     f"{num(r['weight_memory_mb'])} ({r['weight_memory_kind']}) | {mean_sd(r['test_miou'])} | "
                     f"{num(fp32['median'])} ({num(fp32['min'])}-{num(fp32['max'])}) | "
                     f"{num(int8['median'])} ({num(int8['min'])}-{num(int8['max'])}) | "
                     f"{fp32['median'] / ref:.2f} | {num(r['train_minutes'])} |")
    lines += ["", "**Goal** (issue 23): `fast` FP32 latency <= LR-ASPP's in the same run, and its mean mIoU above "
              "LR-ASPP's by more than their combined sd (the sum of the two standard deviations):", ""]
    for g in result["goal"]:
        lines.append(f"- {rows[g['row']]['label']}: **{'met' if g['met'] else 'not met'}**: FP32 "
                     f"{num(g['fp32_ms'])} ms against LR-ASPP's {num(g['lraspp_fp32_ms'])} ms "
                     f"({'within' if g['latency_met'] else 'over'}); mIoU {g['miou_gain']:+.2f} points against a "
                     f"combined sd of {g['combined_sd']:.2f} ({'above' if g['miou_met'] else 'not above'})")
    return lines


def markdown(result: dict) -> str:
    budget, machine, timings = result["budget"], result["machine"], result["latency"]
    h, w = budget["latency_size"]
    lines = markdown_header("Accuracy against CPU latency: BiSegUNet and torchvision's lightweight models",
                            result["command"], machine)
    lines += [f"Whole run: {result['minutes']:.1f} min (trainings found on disk are reused and not counted).", "",
              *table(result), "", f"![mIoU against FP32 latency at {h}x{w}](pareto.png)", "",
              f"**Training, the same for every model and seed**: {result['training']}; CE + Dice loss, Adam, cosine "
              f"learning rate restarting at the phase boundaries {result['phase_boundaries']} (epochs). Binarized "
              "rows switch the binary layers on in phase 2 and train fully binary in phase 3; float rows and the "
              "torchvision models use the same schedule without binarization. best.pt is chosen on the validation "
              "scenes and scored once on the test scenes (another seed, never trained or selected on). Each "
              "row's command (seed K = 0, 1, ...), run alone, repeats its training:", ""]
    lines += [f"- {e.label}: `{result['rows'][e.key]['command']}`" for e in ENTRIES]
    lines += [
        "", f"**torchvision {result['torchvision']}**: `lraspp_mobilenet_v3_large` and "
        "`deeplabv3_mobilenet_v3_large` built with `weights=None, weights_backbone=None` (no auxiliary head): "
        "torchvision's architectures trained from scratch here, not its published ImageNet-pretrained "
        "checkpoints, which start far ahead.", "",
        f"**Size**: parameters and real FLOPs (2 x multiply-adds, binary convolutions counted as ordinary ones) "
        f"from `bisegunet-profile` at {h}x{w}. Weights: packed 1-bit for binarized rows, FP32 otherwise.", "",
        f"**Latency** at {h}x{w} (training ran at a smaller size: the networks are fully convolutional): each "
        "row's network with random weights and BatchNorm statistics (the operations of a trained one's graph, "
        "which is all latency depends on; bench/backends.random_state) through bisegunet-export's graph "
        "(uint8 pixels in, labels and confidence out), FP32 and INT8 "
        f"(bisegunet-quantize, calibrated on {budget['calibration_frames']} frames), ONNX Runtime "
        f"{machine.get('onnxruntime')} CPU provider, batch 1. FP32 graphs were timed "
        f"interleaved with each other ({timings['fp32']['repetitions']} repetitions after "
        f"{timings['fp32']['warmup']} warm-up calls each, order rotated every repetition), then INT8 ones the "
        f"same way. Load average (1/5/15 min) around FP32: {timings['fp32']['load_average_before']} -> "
        f"{timings['fp32']['load_average_after']}; around INT8: {timings['int8']['load_average_before']} -> "
        f"{timings['int8']['load_average_after']}. On a shared machine read the ratio to LR-ASPP.", ""]
    return "\n".join(lines)


def readme_block(result: dict | None) -> str:
    """README's generated part: pareto.json's table and verdict, or where it will come from."""
    if result is None:
        body = ["Not measured yet: `make bench` (`python -m bench.pareto`) writes bench/pareto.md, .json and .png "
                "and this block."]
    else:
        h, w = result["budget"]["latency_size"]
        body = [f"From [bench/pareto.md](bench/pareto.md) (`{result['command']}`, {result['machine']['date'][:10]}, "
                f"{result['machine']['cpu']}, {result['machine']['cores']} cores). Training: {result['training']}; "
                f"latency at {h}x{w}. Method and caveats: bench/pareto.md.", "", *table(result), "",
                "![mIoU against latency](bench/pareto.png)"]
    return "\n".join([BEGIN, "<!-- generated by `python -m bench.pareto` from bench/pareto.json; do not edit -->",
                      "", *body, "", END])


def with_readme_block(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md lacks the markers {BEGIN} ... {END}")
    return text[:start] + block + text[end + len(END):]


def plot(result: dict, out: Path) -> Path:
    """Mean test mIoU (± sd) against FP32 median latency (min-max), marker area proportional to parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    kinds = {"BiSegUNet, binarized": "tab:red", "BiSegUNet, float": "tab:orange",
             "torchvision, from scratch": "tab:blue"}
    rows, ms = result["rows"], result["latency"]["fp32"]["ms"]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    largest = max(r["parameters"] for r in rows.values())
    for e in ENTRIES:
        r, t = rows[e.key], ms[e.key]
        x, y = t["median"], r["test_miou"]["mean"]
        kind = ("torchvision, from scratch" if e.model.startswith("torchvision:")
                else "BiSegUNet, binarized" if e.binarize else "BiSegUNet, float")
        ax.errorbar(x, y, xerr=[[x - t["min"]], [t["max"] - x]], yerr=r["test_miou"]["sd"] or 0, color="black",
                    alpha=0.4, capsize=2)
        ax.scatter(x, y, s=1500 * r["parameters"] / largest + 20, color=kinds[kind], alpha=0.5, edgecolors="black")
        ax.annotate(e.label, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=8)
    latencies = [ms[e.key]["median"] for e in ENTRIES]
    ax.set_xscale("log")
    ax.set_xlim(min(latencies) / 1.5, max(latencies) * 4)     # room for the labels right of the points
    ax.margins(y=0.15)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.legend(handles=[plt.Line2D([], [], marker="o", linestyle="", color=c, alpha=0.5, markersize=10, label=k)
                       for k, c in kinds.items()], loc="lower right", fontsize=8)
    h, w = result["budget"]["latency_size"]
    ax.set_xlabel(f"ONNX Runtime FP32 latency at {h}x{w}, median and min-max (ms, this CPU; log scale)")
    ax.set_ylabel(f"test mIoU, mean ± sd of {result['budget']['seeds']} seeds (%)")
    ax.set_title("Accuracy against CPU latency; marker area proportional to parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def shown_path(path: Path) -> Path:
    """Relative to the checkout where it lies inside it (so that the commands shown repeat anywhere)."""
    path = path.resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy budget and sizes: checks the path, not the models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where pareto.{json,md,png} go")
    parser.add_argument("--runs", type=Path, help="training runs, reused when finished (default: runs/pareto; "
                                                  "OUT/runs with --smoke)")
    parser.add_argument("--seeds", type=int, help="seeds per row, 0 .. N-1 (default 3; --smoke 2; at least 2)")
    parser.add_argument("--repetitions", type=int, help="interleaved timed calls per graph (default 7; at least 5 "
                                                        "outside --smoke)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="trainings (and graph builds) at once, each its own process (with one torch thread "
                             "where N > 1; a full run's trainings always)")
    parser.add_argument("--record", action="store_true", help="only record the finished trainings in "
                                                              "OUT/pareto.runs.json (before a sitting ends)")
    args = parser.parse_args(argv)
    budget = SMOKE if args.smoke else FULL
    budget = Budget(budget.overrides, budget.latency_size, budget.calibration_frames, args.seeds or budget.seeds,
                    args.repetitions or budget.repetitions)
    if budget.seeds < 2 or args.jobs < 1 or budget.repetitions < (1 if args.smoke else 5):
        parser.error("--seeds must be at least 2, --jobs at least 1, --repetitions at least 5 (1 with --smoke)")
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    runs = shown_path(args.runs or (args.out / "runs" if args.smoke else ROOT / "runs/pareto"))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ledger = ledger_path(args.out / "pareto")
    recorded = read_ledger(ledger)
    if args.record:
        write_ledger(ledger, finished(budget, runs, recorded))
        log.info("%s: %d finished trainings recorded", ledger, len(read_ledger(ledger)))
        return 0
    jobs = missing_runs(budget, runs, recorded)
    log.info("%d of %d trainings to run (the others are finished under %s or recorded in %s)", len(jobs),
             budget.seeds * len(ENTRIES), runs, ledger)
    with tempfile.TemporaryDirectory() as tmp:
        with workers(args.jobs) as pool:       # gone before the timing
            failed = train_in_workers(jobs, pool) if args.smoke else train(jobs, args.jobs, "cpu")
            write_ledger(ledger, finished(budget, runs, recorded))
            if failed:
                sys.exit(f"{len(failed)} trainings failed; see {', '.join(failed)}; rerun to continue")
            graphs = built_graphs(budget, pool, Path(tmp))
        h, w = budget.latency_size
        rows = {e.key: {"label": e.label, **size(e, h, w), **accuracy(e, budget, runs, recorded)} for e in ENTRIES}
        timings = latency(graphs, budget.repetitions)
    cfg = config(list(budget.overrides))
    result = {"command": " ".join(["python -m bench.pareto", *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe(), "torchvision": import_torchvision().__version__, "budget": asdict(budget),
              "training": f"`{CONFIG}` with `{' '.join(budget.overrides)}`: synthetic scenes at "
                          f"{cfg.data.height}x{cfg.data.width}, difficulty {cfg.data.difficulty}, augmentation "
                          f"on, {cfg.epochs} epochs x {cfg.iters_per_epoch} iterations x batch {cfg.batch_size}, "
                          f"{cfg.data.val_size} validation and {cfg.data.test_size} test scenes",
              "phase_boundaries": list(PhaseSchedule(cfg.epochs, tuple(cfg.phase_fractions)).boundaries),
              "rows": rows, "latency": timings, "minutes": (time.perf_counter() - started) / 60}
    result["goal"] = goal(rows, timings)
    text = write_results(args.out / "pareto", result, markdown(result))
    plot(result, args.out / "pareto.png")
    if not args.smoke and args.out.resolve() == (ROOT / "bench").resolve():
        README.write_text(with_readme_block(README.read_text(), readme_block(result)))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
