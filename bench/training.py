"""Binarized against float with the same budget: the tiny preset's three-phase run on 2 CPU cores.

    python -m bench.training --run     # trains both (about 45 min on 2 cores), then writes the table
    python -m bench.training           # writes the table from runs/ already there

The binarized run is config/train/tiny_synthetic.yaml (the shipped model); the float run is the
same with binarize=false. Writes bench/training.md and bench/training.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from bench.machine import describe, markdown_header, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/train/tiny_synthetic.yaml"
RUNS = {"binarized": ("tiny_synthetic", []), "float": ("tiny_synthetic_float", ["binarize=false",
                                                                                "name=tiny_synthetic_float"])}
PAPER_GAP = 4.1     # the paper's Table 3: 73.1 FP32 vs 69.0 binarized mIoU at 512x1024


def command(overrides: list[str]) -> list[str]:
    return ["bisegunet-train", "--config", CONFIG, *overrides]


def summary(name: str) -> dict:
    rows = [json.loads(line) for line in (ROOT / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    fully_binary = [r for r in rows if r["binarized_fraction"] == 1]   # a float run has none: all epochs count
    return {"epochs": len(rows), "minutes": sum(r["seconds"] for r in rows) / 60,
            "final_miou": rows[-1]["val_miou"],
            "best_miou": max(r["val_miou"] for r in fully_binary or rows),
            "phase_end_miou": {str(r["phase"]): r["val_miou"] for r in rows}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="train both runs first")
    args = parser.parse_args(argv)
    if args.run:
        for _, overrides in RUNS.values():
            subprocess.run([sys.executable, "-m", "bisegunet_training.train", *command(overrides)[1:]], cwd=ROOT,
                           check=True)
    cfg = yaml.safe_load((ROOT / CONFIG).read_text())
    results = {label: summary(name) for label, (name, _) in RUNS.items()}
    gap = 100 * (results["float"]["best_miou"] - results["binarized"]["best_miou"])
    lines = markdown_header("Training: binarized vs float, same budget", "python -m bench.training", describe())
    lines += [f"Data: synthetic street scenes at {cfg['data']['height']}x{cfg['data']['width']}, difficulty "
              f"{cfg['data']['difficulty']}, {cfg['epochs']} epochs x {cfg['iters_per_epoch']} iterations x batch "
              f"{cfg['batch_size']}; validation on {cfg['data']['val_size']} held-out scenes. Options: estimator "
              "approx_sign, binary regularisation mean-reduced (docs/training.md), no distillation, no IR-Net "
              "standardisation.", "",
              "| run | command | minutes (sum of epochs) | best mIoU % | final mIoU % |", "|---|---|---|---|---|"]
    for label, (name, overrides) in RUNS.items():
        r = results[label]
        lines.append(f"| {label} | `{' '.join(command(overrides))}` | {r['minutes']:.1f} | {100 * r['best_miou']:.2f} "
                     f"| {100 * r['final_miou']:.2f} |")
    lines += ["", f"Gap (float - binarized, best): **{gap:.2f} mIoU points**; the paper's gap is {PAPER_GAP} points "
              f"(its Table 3, Cityscapes, not measured here). Best = best validation mIoU once fully binary "
              "(phase 3) for the binarized run, over all epochs for the float run.", ""]
    print(write_results(ROOT / "bench/training", {"runs": results, "gap_points": gap}, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
