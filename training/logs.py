"""Training logs: one JSON line per epoch, TensorBoard scalars, and the curves PNG at the end."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


class RunLog:
    """Writes metrics.jsonl and TensorBoard events under `run_dir` (rank 0 only).

    Rows of epochs from `start_epoch` on are dropped from an existing metrics.jsonl: a resumed run
    rewrites the epochs after its checkpoint, and a fresh run (0) with the name of an earlier one
    replaces that run's logs, as it replaces its checkpoints, instead of appending to them.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, start_epoch: int = 0):
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        if self.jsonl.exists():
            kept = [row for row in read_rows(self.jsonl) if row["epoch"] < start_epoch]
            if start_epoch == 0:
                log.warning("replacing the logs and checkpoints of the earlier run in %s", run_dir)
                shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
            self.jsonl.write_text("".join(json.dumps(row) + "\n" for row in kept))
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
    top.plot(epochs, [100 * (r["val_miou_network_res"] or 0) for r in rows], marker="o", ms=3)
    top.set_ylabel("val mIoU, network res (%)")
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
