"""The shipped model's record: where models/bisegunet_fast.* came from and what it scores.

    python -m bench.shipped runs/fast_synthetic_1024 [--log runs/fast_synthetic_1024.log] [--frames 100]
        [--model M.onnx --record M.train.json --curves DIR]     # a candidate's record (default: the shipped model)

Writes models/bisegunet_fast.train.json: the run's test.json (best.pt chosen on validation, scored
once on the held-out test split at the label's resolution), the training command and commit stored
in best.pt, the exported model's path and sha256 (the model's metadata names the command, commit
and configuration back: record_mismatch, which bench/summary.py applies), and the exported model's
score through `bisegunet-eval-bag` on a fresh bag of 512x1024 synthetic frames at 10 Hz (the demo's setting) drawn from make-bag's own seed, which no training,
validation or test split uses. Copies the run's metrics.jsonl and curves.png to docs/shipped_run/, and
with --log the run's console log less its progress bars as train.log.
README's numbers table reads the record (bench/summary.py).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bisegunet_ros.backends.tensorrt.engine_cache import sha256_of   # the one file hash (engine keys too)
from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / f"{SHIPPED_MODEL}.onnx"
RECORD = ROOT / "models" / f"{SHIPPED_MODEL}.train.json"
CURVES = ROOT / "docs/shipped_run"


def record_mismatch(root: Path, record: dict) -> str | None:
    """Why a training record and the model it names do not name each other, or None when they do: the
    model file's sha256 is the record's, and the model's metadata has the record's command and commit."""
    from bisegunet_ros.model_info import ModelError, ModelInfo

    name = record.get("onnx")
    if not name or not (root / name).is_file():
        return f"the record names no model file that exists (onnx: {name!r})"
    if sha256_of(root / name) != record.get("onnx_sha256"):
        return f"{name}'s sha256 is not the record's onnx_sha256: not the model the record scored"
    try:
        info = ModelInfo.from_onnx(root / name)
    except ModelError as exc:
        return str(exc)
    for key, value in (("command", info.training_command), ("commit", info.commit)):
        if value != record.get(key):
            return f"{name}'s metadata has {key} {value!r}, its record {record.get(key)!r}"
    return None


def held_out_bag_score(model: Path, frames: int, tmp: Path) -> dict:
    """mIoU, Dice and pixel accuracy of `model` (ONNX Runtime) on `frames` fresh 512x1024 frames."""
    from bisegunet_ros.evaluation.evaluate_bag import main as eval_bag
    from bisegunet_training.make_bag import main as make_bag

    bag = tmp / "held_out"
    if make_bag([str(bag), "--frames", str(frames), "--height", "512", "--width", "1024", "--fps", "10"]):
        raise RuntimeError("bisegunet-make-bag failed")
    if eval_bag([str(bag), "--model", str(model), "--backend", "onnxruntime", "--out", str(tmp / "report")]):
        raise RuntimeError("bisegunet-eval-bag failed")
    report = json.loads((tmp / "report" / "report.json").read_text())
    return {"frames": report["frames"]["evaluated"], "size": "512x1024",
            **{k: report["metrics"][k] for k in ("miou", "mean_dice", "pixel_accuracy")}}


def without_progress_bars(log: str) -> str:
    """A console log less tqdm's redrawn bars (lines split at carriage returns; those with "| n/total [" dropped)."""
    lines = [line.rstrip() for line in log.replace("\r", "\n").splitlines()]
    return "".join(line + "\n" for line in lines if line.strip() and not re.search(r"\| *\d+/\d+ \[", line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the shipped run's directory (runs/NAME)")
    parser.add_argument("--frames", type=int, default=100, help="frames of the held-out bag")
    parser.add_argument("--log", type=Path, help="the run's console log (what `nohup ... >` caught)")
    parser.add_argument("--model", type=Path, default=MODEL, help="the run's export (default: the shipped model)")
    parser.add_argument("--record", type=Path, default=RECORD, help="the record to write")
    parser.add_argument("--curves", type=Path, default=CURVES, help="where the curves and logs go")
    args = parser.parse_args(argv)
    model = args.model.resolve()
    from bisegunet_training.checkpoint import load_checkpoint

    test = json.loads((args.run_dir / "test.json").read_text())
    state = load_checkpoint(args.run_dir / "best.pt")
    with tempfile.TemporaryDirectory() as tmp:
        bag = held_out_bag_score(model, args.frames, Path(tmp))
    record = {**test, "checkpoint": f"{args.run_dir.name}/best.pt", "command": state["command"],
              "commit": state["commit"], "onnx": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
              "onnx_sha256": sha256_of(model), "held_out_bag": bag}
    mismatch = record_mismatch(ROOT, record)
    if mismatch:
        raise SystemExit(f"{model} is not the export of {args.run_dir / 'best.pt'}: {mismatch}")
    args.record.write_text(json.dumps(record, indent=2) + "\n")
    args.curves.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "curves.png"):
        shutil.copy2(args.run_dir / name, args.curves / name)
    if args.log:
        (args.curves / "train.log").write_text(without_progress_bars(args.log.read_text()))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
