"""Evaluation reports: JSON for machines, Markdown for people, PNG plots for both.

Used by the rosbag evaluator; the numbers come from one confusion matrix (metrics.py), the
plots are what a vehicle team looks at first: per-class IoU, where classes are confused,
latency, and a few frames side by side.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"


def write_report(out_dir: str | Path, result: dict, confusion: np.ndarray, class_names: list[str],
                 latencies_ms: list[float], samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 palette: np.ndarray) -> Path:
    """Write report.json, report.md and the plots into `out_dir`; return the JSON's path.

    `result` holds the metrics summary and run facts; `samples` are (rgb, ground truth, prediction).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {"per_class_iou": _iou_bars(out, result, class_names),
             "confusion_matrix": _confusion(out, confusion, class_names)}
    if latencies_ms:
        plots["latency"] = _latency(out, latencies_ms)
    if samples:
        plots["samples"] = _samples(out, samples, palette)
    result = {**result, "plots": {k: v.name for k, v in plots.items()}}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out / "report.md").write_text(_markdown(result, class_names))
    log.info("report written to %s", out)
    return json_path


def _markdown(result: dict, class_names: list[str]) -> str:
    m = result["metrics"]
    lines = [f"# Evaluation of {result.get('bag', '')}", "",
             f"- mode: {result.get('mode')}, model: {result.get('model', 'n/a')}, backend: {result.get('backend', 'n/a')}",
             f"- frames evaluated: {result['frames']['evaluated']}, without ground truth: "
             f"{result['frames']['without_ground_truth']}, without prediction: {result['frames']['without_prediction']}",
             f"- **mIoU {_fmt(m['miou'])} %**, mean Dice {_fmt(m['mean_dice'])} %, pixel accuracy "
             f"{_fmt(m['pixel_accuracy'])} %",
             f"- predicted pixels outside the model's classes (e.g. 255 void; misses of their ground-truth "
             f"class): {m.get('unclassified_pixels', 0)}"]
    if result.get("latency_ms"):
        lat = result["latency_ms"]
        lines.append(f"- latency ({lat['kind']}): median {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
                     f"p99 {lat['p99']:.1f} ms; throughput {result.get('fps', 0):.1f} fps")
    lines += ["", "Classes absent from both ground truth and prediction are left out of the means "
              "(as in the official Cityscapes evaluation; docs/metrics.md).", "",
              "| class | IoU % | Dice % |", "|---|---|---|"]
    lines += [f"| {n} | {_fmt(m['iou'][n])} | {_fmt(m['dice'][n])} |" for n in class_names]
    lines += ["", *(f"![{k}]({v})" for k, v in result["plots"].items()), ""]
    return "\n".join(lines)


def _iou_bars(out: Path, result: dict, class_names: list[str]) -> Path:
    values = [result["metrics"]["iou"][n] for n in class_names]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(values)), [0 if v is None else 100 * v for v in values], color="#3b7dd8")
    ax.set_xticks(range(len(values)), class_names, rotation=60, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.axhline(100 * (result["metrics"]["miou"] or 0), color="k", ls="--", lw=1, label="mIoU")
    ax.legend()
    return _save(fig, out / "per_class_iou.png")


def _confusion(out: Path, confusion: np.ndarray, class_names: list[str]) -> Path:
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(normalised, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    fig.colorbar(image, ax=ax, label="fraction of the ground-truth row")
    return _save(fig, out / "confusion_matrix.png")


def _latency(out: Path, latencies_ms: list[float]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(latencies_ms, bins=min(50, max(5, len(latencies_ms) // 2)), color="#d8833b")
    ax.axvline(float(np.median(latencies_ms)), color="k", ls="--", lw=1, label="median")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.legend()
    return _save(fig, out / "latency.png")


def _samples(out: Path, samples, palette: np.ndarray) -> Path:
    fig, axes = plt.subplots(len(samples), 3, figsize=(12, 2.4 * len(samples)), squeeze=False)
    for row, (rgb, gt, pred) in zip(axes, samples):
        for ax, image, title in zip(row, (rgb, _colours(palette, gt), _colours(palette, pred)),
                                    ("input", "ground truth", "prediction")):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return _save(fig, out / "samples.png")


def _colours(palette: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """RGB of class ids; ids beyond the palette (e.g. mono16 predictions) are black."""
    return np.where((ids < len(palette))[..., None], palette[np.minimum(ids, len(palette) - 1)], 0).astype(np.uint8)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
