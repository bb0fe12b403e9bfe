"""Training logs: one JSON line per epoch, TensorBoard scalars, and the curves PNG at the end."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class RunLog:
    """Writes metrics.jsonl and TensorBoard events under `run_dir` (rank 0 only)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; scalars go to metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train/") -> None:
        if self.writer:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, value, step)

    def epoch(self, row: dict) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.scalars(row["epoch"], {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"},
                     prefix="epoch/")

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def read_rows(jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]


def plot_curves(jsonl: Path, boundaries: tuple[int, int], out: Path) -> Path:
    """Validation mIoU and learning rate per epoch with the phase boundaries (the paper's Figures 4-5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(jsonl)
    epochs = [r["epoch"] + 1 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(epochs, [100 * (r["val_miou"] or 0) for r in rows], marker="o", ms=3)
    top.set_ylabel("validation mIoU (%)")
    bottom.plot(epochs, [r["lr"] for r in rows], color="#d8833b")
    bottom.set_ylabel("learning rate (end of epoch)")
    bottom.set_xlabel("epoch")
    for ax in (top, bottom):
        ax.axvline(boundaries[0] + 0.5, color="r", ls="--", lw=1, label="binarization starts")
        ax.axvline(boundaries[1] + 0.5, color="g", ls="--", lw=1, label="fully binary")
    top.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
