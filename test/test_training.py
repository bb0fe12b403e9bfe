"""Training: the phase schedule, a shortened real run, resume after a kill, DDP, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bisegunet_training.checkpoint import load_checkpoint
from bisegunet_training.losses import SegmentationLoss, binary_regularization, dice_loss
from bisegunet_training.schedule import PhaseSchedule, binarization_order
from bisegunet_training.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "config/train/ci.yaml")


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_paper_schedule_and_its_scaling():
    paper = PhaseSchedule(180)
    assert paper.boundaries == (50, 150)
    assert [paper.phase(e) for e in (0, 49, 50, 149, 150, 179)] == [1, 1, 2, 2, 3, 3]
    counts = [paper.binarized_count(e, 41) for e in range(180)]
    assert counts[49] == 0 and counts[50] > 0 and counts[149] == 41 and counts == sorted(counts)
    assert PhaseSchedule(18).boundaries == (5, 15)
    # the learning rate restarts at each phase boundary
    assert paper.lr_factor(49.99) < 0.02 and paper.lr_factor(50) == 1.0 and paper.lr_factor(150) == 1.0
    assert binarization_order(["a", "b", "c"], "deepest_first") == ["c", "b", "a"]


def test_loss_parts():
    logits = torch.randn(2, 19, 8, 8)
    target = logits.argmax(1)
    target[0, 0, 0] = 255
    assert dice_loss(logits * 100, target) < 0.05            # confident and right: Dice loss near 0
    w = torch.tensor([0.5, -0.5, 1.0])
    assert binary_regularization([w], "sum") == pytest.approx(1.0)
    assert binary_regularization([w], "mean") == pytest.approx(1 / 3)
    total, parts = SegmentationLoss()(logits, target, [w])
    assert total.item() == pytest.approx(parts["ce"] + parts["dice"] + 1e-4 * parts["binary_reg"], rel=1e-5)


def test_shortened_run_goes_through_three_phases(tmp_path):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "epochs=6", "iters_per_epoch=3"]) == 0
    history = rows(tmp_path / "ci")
    assert [r["phase"] for r in history] == [1, 1, 2, 2, 2, 3]
    fractions = [r["binarized_fraction"] for r in history]
    assert fractions[:2] == [0, 0] and 0 < fractions[2] < fractions[3] < 1 and fractions[4:] == [1, 1]
    state = load_checkpoint(tmp_path / "ci" / "last.pt")
    assert state["binarized"] and all(state["binarized"].values())       # phase 3: every binary layer binary
    assert (tmp_path / "ci" / "best.pt").is_file() and (tmp_path / "ci" / "curves.png").stat().st_size > 1000
    assert history[-1]["loss_ce"] < history[0]["loss_ce"]
    # the same command again replaces the run's logs instead of appending to them
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "epochs=3", "iters_per_epoch=1"]) == 0
    assert [r["epoch"] for r in rows(tmp_path / "ci")] == [0, 1, 2]


def test_options_beyond_the_paper_are_on_when_asked(tmp_path):
    """Distillation from the phase-1 float model and IR-Net standardisation (model_overrides)."""
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "iters_per_epoch=2", "distill_weight=1.0",
                       "model_overrides=[weight_standardization=true]"]) == 0
    history = rows(tmp_path / "ci")
    assert "loss_distill" not in history[0] and history[1]["loss_distill"] >= 0   # the teacher exists from phase 2
    state = load_checkpoint(tmp_path / "ci" / "last.pt")
    assert state["model_config"]["weight_standardization"] is True and state["teacher"] is not None


def test_training_bench_reports_the_options_each_row_ran_with():
    from bench.training import RUNS, config, options

    described = {label: options(config(overrides)) for label, overrides in RUNS.items()}
    assert "IR-Net off" in described["paper"] and "distillation off" in described["paper"]
    assert "phases 5/10/3" in described["paper"] and "phases 5/9/4" in described["irnet_phase3"]
    assert "IR-Net on" in described["irnet"] and "distillation weight 1.0" in described["distill"]
    assert "shallowest first" in described["irnet_shallow"] and described["float"].startswith("float")


def test_float_model_learns_a_fixed_batch():
    from bisegunet_training.data import build_dataset
    from bisegunet_training.model import build_model, load_model_config

    torch.manual_seed(0)
    data = build_dataset("synthetic", "train", 32, 64, [0.5] * 3, [0.25] * 3, length=4)
    images = torch.stack([data[i][0] for i in range(4)])
    labels = torch.stack([data[i][1] for i in range(4)])
    model = build_model(load_model_config("tiny"))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    loss = SegmentationLoss()
    losses = []
    for _ in range(15):
        value, _ = loss(model(images), labels, [])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < 0.7 * losses[0]


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bisegunet_training.train", "--config", CI, *args]


@pytest.mark.slow
def test_killed_run_resumes_and_finishes(tmp_path):
    args = [f"out_dir={tmp_path}", "epochs=3", "iters_per_epoch=5", "name=resume", "tensorboard=false"]
    proc = subprocess.Popen(_train_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "resume" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)                      # the first epoch is saved: killed inside the second
    proc.wait()
    done = load_checkpoint(last)["epoch"]
    assert 1 <= done < 3
    assert subprocess.run(_train_cmd(*args, "--resume", str(last)), capture_output=True).returncode == 0
    history = rows(tmp_path / "resume")
    assert [r["epoch"] for r in history] == [0, 1, 2]           # one row per epoch, none repeated
    assert load_checkpoint(last)["epoch"] == 3 and history[-1]["epoch"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("precision", [[], ["amp=bf16", "channels_last=true"]], ids=["fp32", "bf16_channels_last"])
def test_two_process_ddp_matches_one_process(tmp_path, precision):
    """Same global batch (4) split over 2 gloo processes. BatchNorm normalises with each process's
    own half batch (as plain DDP does), so losses agree to a few percent, not bit for bit."""
    common = ["epochs=3", "iters_per_epoch=3", "data.augment=false", "tensorboard=false", *precision]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run(_train_cmd(f"out_dir={tmp_path / 'one'}", *common), capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(29500 + os.getpid() % 1000), "-m", "bisegunet_training.train", "--config", CI,
                          f"out_dir={tmp_path / 'two'}", *common], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    single, ddp = rows(tmp_path / "one" / "ci"), rows(tmp_path / "two" / "ci")
    assert len(single) == len(ddp) == 3
    assert ddp[0]["loss_total"] == pytest.approx(single[0]["loss_total"], rel=0.05)


@pytest.mark.parametrize("override, key", [("epochz=3", "epochz"),
                                           ("model_overrides=[widht_multiplier=2]", "widht_multiplier")])
def test_unknown_config_key_is_refused(tmp_path, caplog, override, key):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", override]) == 2
    assert f"unknown key {key}" in caplog.text


@pytest.mark.parametrize("problem", ["missing directory", "image without mask", "mask ids outside table"])
def test_bad_dataset_is_refused_with_the_file_named(tmp_path, caplog, problem):
    import cv2
    import numpy as np

    root = tmp_path / "data"
    if problem != "missing directory":
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        cv2.imwrite(str(root / "images" / "a.png"), np.zeros((32, 64, 3), np.uint8))
        if problem == "mask ids outside table":
            cv2.imwrite(str(root / "masks" / "a.png"), np.full((32, 64), 40, np.uint8))
    args = ["--config", CI, f"out_dir={tmp_path}", "data.kind=folders", f"data.root={root}"]
    assert train_main(args) == 2
    expected = {"missing directory": "missing images directory", "image without mask": "a.png: no mask",
                "mask ids outside table": "a.png: ids [40] are outside the class table"}[problem]
    assert expected in caplog.text
