"""Checkpoints: written atomically, resumable, and enough on their own to export a model.

Contract (format 1), a dict saved with torch.save:
  format            "bisegunet-checkpoint/1"
  model_config      dict of the model config (model_config_from_dict, then build_model)
  model             state_dict (latent weights and alphas)
  binarized         {binary layer name: bool}, the binarization state
  data              {"height", "width", "mean", "std", "class_names", "palette"}: the input contract
                    and the classes (palette: [r, g, b] per class; absent in older checkpoints)
  epoch             epochs completed; best_miou: best validation mIoU so far
  optimizer, scheduler, rng: training state for --resume
  train_config      dict of TrainConfig fields; command, commit: how it was made
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

FORMAT = "bisegunet-checkpoint/1"
REQUIRED = ("model_config", "model", "binarized", "data")


def written_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write` to a temporary file beside `path`, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """torch.save of `state` with the format tag, atomically."""
    return written_atomically(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def copy_checkpoint(source: str | Path, path: str | Path) -> Path:
    """A byte copy of a checkpoint just written (best.pt of last.pt's state: one serialisation, not two)."""
    return written_atomically(path, lambda tmp: shutil.copyfile(source, tmp))


def load_checkpoint(path: str | Path) -> dict:
    """Load and check a checkpoint; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (bisegunet-train writes runs/<name>/best.pt and last.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a BiSegUNet checkpoint (format {state.get('format') if isinstance(state, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def git_commit(root: str | Path | None = None) -> str:
    """The commit of the source tree (with -dirty), or "" outside a git checkout."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""
