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
    assert not (tmp_path / "ci" / "test.json").exists()        # no test split asked for
    # the same run name again with --overwrite replaces the run instead of appending to its logs
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "epochs=3", "iters_per_epoch=1", "--overwrite"]) == 0
    assert [r["epoch"] for r in rows(tmp_path / "ci")] == [0, 1, 2]


def score_checkpoint(path: Path, dataset) -> float:
    """mIoU of a checkpoint on `dataset`, computed here without the trainer."""
    from bisegunet_ros.metrics import ConfusionMatrix
    from bisegunet_training.export import model_from_checkpoint

    model, _ = model_from_checkpoint(path)
    matrix = ConfusionMatrix(19)
    with torch.no_grad():
        for image, label in (dataset[i] for i in range(len(dataset))):
            matrix.update(label.numpy(), model(image[None]).argmax(1)[0].numpy())
    return matrix.summary()["miou"]


def test_best_checkpoint_is_scored_once_on_the_test_split(tmp_path):
    """best.pt is chosen on validation scenes, then scored on test scenes: test.json names its epoch and
    holds best.pt's score. Scored again with last.pt replaced by another model of a later epoch, the
    result is the same: test() never reads last.pt."""
    from bisegunet_training.checkpoint import save_checkpoint
    from bisegunet_training.config import load_config
    from bisegunet_training.data import build_dataset
    from bisegunet_training.train import Trainer
    from bisegunet_training.train_config import TrainConfig

    from bisegunet_training.data import split_seed

    args = [f"out_dir={tmp_path}", "iters_per_epoch=2", "data.test_size=6", "seed=1"]
    assert train_main(["--config", CI, *args]) == 0
    test = json.loads((tmp_path / "ci" / "test.json").read_text())
    assert test["train_scene_seed"] == split_seed(0, "train", 1)       # what bench/training checks before reuse
    assert test["command"] == load_checkpoint(tmp_path / "ci" / "best.pt")["command"] != ""
    history = rows(tmp_path / "ci")
    best = max((r for r in history if r["binarized_fraction"] == 1), key=lambda r: r["val_miou_network_res"])
    assert test["epoch"] == best["epoch"]
    assert test["val_miou_network_res"] == pytest.approx(best["val_miou_network_res"])
    test_scenes = build_dataset("synthetic", "test", 64, 128, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], length=6)
    assert test["test_scenes"] == 6 and test["device"] == "cpu" and test["test_split"] == "test"
    assert test["test_miou"] == pytest.approx(score_checkpoint(tmp_path / "ci" / "best.pt", test_scenes), abs=1e-9)
    last = load_checkpoint(tmp_path / "ci" / "last.pt")
    last["model"] = {k: v.flip(0) if v.is_floating_point() and v.ndim > 1 else v for k, v in last["model"].items()}
    save_checkpoint(tmp_path / "ci" / "last.pt", {**last, "epoch": 99})
    assert score_checkpoint(tmp_path / "ci" / "last.pt", test_scenes) != pytest.approx(test["test_miou"])
    again = Trainer(load_config(CI, TrainConfig, args)).test()
    assert again["epoch"] == test["epoch"] and again["test_miou"] == pytest.approx(test["test_miou"], abs=1e-9)


def test_options_beyond_the_paper_are_on_when_asked(tmp_path):
    """Distillation from the phase-1 float model and IR-Net standardisation (model_overrides)."""
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "iters_per_epoch=2", "distill_weight=1.0",
                       "model_overrides=[weight_standardization=true]"]) == 0
    history = rows(tmp_path / "ci")
    assert "loss_distill" not in history[0] and history[1]["loss_distill"] > 0   # the teacher exists from phase 2
    state = load_checkpoint(tmp_path / "ci" / "last.pt")
    assert state["model_config"]["weight_standardization"] is True and state["teacher"] is not None


def test_training_bench_reports_the_options_each_row_ran_with():
    from bench.training import RUNS, config, options, overrides

    described = {label: options(config(overrides(label, 0, "runs/x", "cpu", []))) for label in RUNS}
    assert described["float"].startswith("float") and "stem 3x5x7, batch 8" in described["float"]
    assert "stem 3, batch 16" in described["float_paper"]
    paper = described["paper"]      # eq. 22, eq. 24 as written, Table 1's stem, Table 10's batch
    assert "ste, binary stem 3, batch 16, regulariser sum (lambda3 0.0001)" in paper and "IR-Net off" in paper
    assert "approx_sign, binary stem 3, batch 8, regulariser sum" in described["paper_approx_sign"]
    assert "binary stem 3," in described["mean_regulariser"] and "regulariser mean" in described["mean_regulariser"]
    assert "float stem 3x5x7" in described["float_stem"] and "regulariser sum" in described["float_stem"]
    assert "IR-Net on" in described["irnet"] and "phases 5/10/3" in paper and "distillation off" in paper
    cfg = config(overrides("irnet", 2, "runs/x", "cuda", []))
    assert (cfg.seed, cfg.name, cfg.device, cfg.data.seed) == (2, "irnet_seed2", "cuda", 0)   # training scenes
    # follow the run seed (split_seed), validation and test scenes are those of data.seed 0 every seed


def _settings(label: str) -> dict:
    """A row's training and model configuration, flattened, less what names the run."""
    from dataclasses import asdict

    from bench.training import config, overrides
    from bisegunet_training.model import load_model_config

    cfg = config(overrides(label, 0, "runs/x", "cpu", []))
    flat = {f"model.{k}": v for k, v in asdict(load_model_config(cfg.model, cfg.model_overrides)).items()}
    for key, value in asdict(cfg).items():
        flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    return {k: v for k, v in flat.items() if k not in ("name", "model_overrides")}


def _differences(a: str, b: str) -> set[str]:
    first, second = _settings(a), _settings(b)
    return {k for k in first if first[k] != second[k]}


def test_training_bench_pairs_differ_in_one_thing():
    """A binarized row and its float reference differ in binarization only (the estimator, the
    regulariser and IR-Net act on binarized layers alone); neighbouring rows in one setting each."""
    from bench.training import RUNS

    inert_in_float = {"binarize", "loss.binary_reduction", "model.estimator", "model.weight_standardization"}
    for label, row in RUNS.items():
        if row.reference:
            assert not RUNS[row.reference].reference and _differences(label, row.reference) <= inert_in_float, label
    assert _differences("paper", "paper_batch8") == {"batch_size"}
    assert _differences("paper_batch8", "paper_approx_sign") == {"model.estimator"}
    assert _differences("paper_approx_sign", "mean_regulariser") == {"loss.binary_reduction"}
    assert _differences("float_stem", "float_stem_mean") == {"loss.binary_reduction"}
    assert _differences("float_stem", "float_stem_irnet") == {"model.weight_standardization"}
    assert _differences("float_stem_mean", "irnet") == {"model.weight_standardization"}
    assert _differences("float_stem_irnet", "irnet") == {"loss.binary_reduction"}


def test_training_bench_shows_only_the_digits_the_spread_supports():
    from bench.training import fmt

    assert fmt(27.8812, 0.52) == "27.9 ± 0.5"
    assert fmt(27.8812, 0.052) == "27.88 ± 0.05"
    assert fmt(27.8812, 1.7) == "28 ± 2"
    assert fmt(27.8812, None) == "27.9 (one seed)"


def test_training_bench_gap_is_relative_with_an_interval_and_a_verdict_from_it():
    from bench.training import PAPER_RELATIVE_GAP, gap_to, t_quantile

    assert t_quantile(0.975, 2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, abs=1e-3)
    assert PAPER_RELATIVE_GAP == pytest.approx(4.1 / 73.1)
    # 4 points at ~31 % mIoU: 13 % of the float model, more than twice the paper's 5.6 %
    gap = gap_to([25.0, 27.0, 29.0], [30.0, 31.0, 32.0])
    assert gap["gap_points"] == pytest.approx(4.0) and gap["relative_gap"] == pytest.approx(4 / 31)
    assert gap["gap_standard_error"] == pytest.approx((4 / 3 + 1 / 3) ** 0.5)
    assert gap["relative_gap_standard_error"] == pytest.approx(27 / 31 * ((4 / 3) / 27**2 + (1 / 3) / 31**2) ** 0.5)
    low, high = gap["relative_gap_interval"]
    assert low < PAPER_RELATIVE_GAP < high and gap["verdict"] == "undecided"        # 3 seeds: t(2.9 df) is wide
    assert gap_to([27.0, 27.1, 26.9], [31.0, 31.1, 30.9])["verdict"] == "wider than the paper's"
    assert gap_to([30.0, 30.1, 29.9], [31.0, 31.1, 30.9])["verdict"] == "narrower than the paper's"
    assert gap_to([27.0], [31.0, 31.1])["verdict"].startswith("undecided")


def _finished_run(folder: Path, args: list[str], value: float,
                  recorded: tuple[str, ...] = ("train_scene_seed", "command")) -> None:
    """A run as the trainer leaves it: metrics.jsonl, best.pt and test.json, which records the run's command and
    training scenes' seed (those of them in `recorded`: fewer as before the trainer wrote them)."""
    import shlex

    from bench.training import command, config, scene_seed
    from bisegunet_training.checkpoint import REQUIRED, save_checkpoint

    folder.mkdir(parents=True)
    epochs = [{"epoch": e, "phase": 1 + e, "seconds": 30.0, "threads": 1, "val_miou_network_res": value + 0.01 * e}
              for e in range(3)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in epochs))
    run = {"train_scene_seed": scene_seed(config(args)), "command": shlex.join(command(args))}
    (folder / "test.json").write_text(json.dumps({"device": "cpu", "epoch": 2, "val_miou_network_res": value + 0.02,
                                                  "test_miou": value, "test_scenes": 200,
                                                  **{k: run[k] for k in recorded}}))
    save_checkpoint(folder / "best.pt", {k: None for k in REQUIRED})


def test_training_bench_reports_mean_spread_and_gap_of_the_test_scores(tmp_path):
    """Three seeds a row, written as the trainer writes them; the table's statistics checked by hand."""
    from bench.training import overrides, report, run_name

    scores = {"float_3x3_stem": [0.30, 0.31, 0.32], "paper_approx_sign": [0.25, 0.27, 0.29]}
    for label, values in scores.items():
        for seed, value in enumerate(values):
            _finished_run(tmp_path / run_name(label, seed), overrides(label, seed, str(tmp_path), "cpu", []), value)
    markdown = report(list(scores), str(tmp_path), [], "python -m bench.training", tmp_path / "training", range(3))
    rows = json.loads((tmp_path / "training.json").read_text())["rows"]
    ref, row = rows["float_3x3_stem"], rows["paper_approx_sign"]
    assert (ref["test_miou_mean"], ref["test_miou_sd"]) == pytest.approx((31.0, 1.0))
    assert (row["test_miou_mean"], row["test_miou_sd"]) == pytest.approx((27.0, 2.0))
    assert row["reference"] == "float_3x3_stem" and row["gap_points"] == pytest.approx(4.0)
    assert "| 3 | 31 ± 1 | 30.0 - 32.0 |" in markdown
    assert "| 3 | 27 ± 2 | 25.0 - 29.0 | float_3x3_stem | 4 ± 1 | 13 ± 4 % |" in markdown
    assert "| undecided |" in markdown and row["minutes_mean"] == pytest.approx(1.5)


def test_training_bench_trains_only_what_is_neither_on_disk_nor_in_the_last_table(tmp_path):
    """Resumable: a finished run with this command is kept (on disk, or in the last table when its
    folder is gone and the table records the training scenes' seed this code draws); a run whose
    recorded command differs, or one recorded before the scenes followed the run seed, is trained again."""
    import shlex
    import shutil

    from bench.training import command, overrides, run_name, to_run
    from bisegunet_training.data import split_seed

    out = str(tmp_path)
    _finished_run(tmp_path / run_name("float", 0), overrides("float", 0, out, "cpu", []), 0.3)
    _finished_run(tmp_path / run_name("paper", 0), overrides("paper_approx_sign", 0, out, "cpu", []), 0.3)  # old paper
    kept = {"seed": 1, "command": shlex.join(command(overrides("float", 1, out, "cuda", []))),
            "train_scene_seed": split_seed(0, "train", 1)}
    jobs = to_run(["float", "paper"], range(2), out, "cpu", [], [kept])
    assert [(j[-4], j[-3]) for j in jobs] == [("seed=0", "name=paper_seed0"), ("seed=1", "name=paper_seed1")]
    for flags in (" --overwrite", " --resume runs/x/last.pt", " --resume=runs/x/last.pt"):   # folder handling only
        assert to_run(["float"], range(2), out, "cpu", [], [{**kept, "command": kept["command"] + flags}]) == []
    for stale in ({k: v for k, v in kept.items() if k != "train_scene_seed"}, {**kept, "train_scene_seed": 0}):
        jobs = to_run(["float"], range(2), out, "cpu", [], [stale])
        assert [j[-3] for j in jobs] == ["name=float_seed1"]
    for older in ((), ("train_scene_seed",)):             # before the trainer recorded the seed, or the command
        folder = tmp_path / run_name("float", 1)
        shutil.rmtree(folder, ignore_errors=True)
        _finished_run(folder, overrides("float", 1, out, "cpu", []), 0.3, recorded=older)
        assert [j[-3] for j in to_run(["float"], range(2), out, "cpu", [], [])] == ["name=float_seed1"]


def test_training_bench_resumes_from_its_ledger_when_the_run_folders_are_gone(tmp_path):
    """bench/ledger.py: a finished run recorded in STEM.runs.json is not trained again in a later sitting whose
    runs/ is gone; the ledger merges by run name."""
    import shutil

    from bench.ledger import ledger_path, read_ledger, write_ledger
    from bench.training import collect, overrides, previous_runs, run_name, to_run

    out, stem = str(tmp_path / "runs"), tmp_path / "training"
    _finished_run(tmp_path / "runs" / run_name("float", 0), overrides("float", 0, out, "cpu", []), 0.3)
    write_ledger(ledger_path(stem), [r for rs in collect(["float"], range(2), out, [], []).values() for r in rs])
    write_ledger(ledger_path(stem), [])                                      # a later record keeps it
    other_budget = {**read_ledger(ledger_path(stem))[0]}
    other_budget["command"] += " iters_per_epoch=8"                          # same name, another run
    write_ledger(ledger_path(stem), [other_budget])
    assert len(read_ledger(ledger_path(stem))) == 2
    shutil.rmtree(tmp_path / "runs")
    assert [r["name"] for r in read_ledger(ledger_path(stem))] == ["float_seed0", "float_seed0"]
    assert [j[-3] for j in to_run(["float"], range(2), out, "cpu", [], previous_runs(stem))] == ["name=float_seed1"]


def test_training_scenes_follow_the_run_seed_validation_and_test_scenes_do_not():
    """split_seed: training seeds data_seed + 3 s are never a validation or test seed, for any run seed s;
    make-bag's default scene seed is none of them and a data.seed that would make it one is refused."""
    from bisegunet_training.data import HELD_OUT_BAG_SEED, split_seed

    train = [split_seed(0, "train", s) for s in range(2000)]
    assert len(set(train)) == 2000 and split_seed(0, "train", 0) == 0         # run seed 0: the scenes of before
    fixed = {split_seed(0, "val", s) for s in range(5)} | {split_seed(0, "test", s) for s in range(5)}
    assert len(fixed) == 2 and not fixed & set(train) and HELD_OUT_BAG_SEED not in fixed | set(train)
    for data_seed, split in ((HELD_OUT_BAG_SEED, "train"), (HELD_OUT_BAG_SEED - 1_000_003, "val")):
        with pytest.raises(ValueError, match="make-bag's held-out bags"):
            split_seed(data_seed, split)


def test_make_bag_draws_its_default_scenes_from_no_split(tmp_path):
    """A bag of bisegunet-make-bag's defaults holds the scenes of HELD_OUT_BAG_SEED, which split_seed refuses."""
    import numpy as np

    from bisegunet_ros.evaluation.bag_io import read_messages
    from bisegunet_ros.image_codec import decode_message
    from bisegunet_training.data import HELD_OUT_BAG_SEED, render_scene, split_seed
    from bisegunet_training.make_bag import main as make_bag

    assert make_bag([str(tmp_path / "bag"), "--frames", "1", "--height", "32", "--width", "64"]) == 0
    rgb = decode_message(next(iter(read_messages(tmp_path / "bag", ["/camera/image_raw"]))).decode())
    assert np.array_equal(rgb, render_scene(HELD_OUT_BAG_SEED, 0, 32, 64)[0])
    for seed in (split_seed(0, "train", 0), split_seed(0, "val"), split_seed(0, "test")):
        assert not np.array_equal(rgb, render_scene(seed, 0, 32, 64)[0])


def trainer(tmp_path: Path, *overrides: str):
    from bisegunet_training.config import load_config
    from bisegunet_training.train import Trainer
    from bisegunet_training.train_config import TrainConfig

    return Trainer(load_config(CI, TrainConfig, [f"out_dir={tmp_path}", *overrides]))


def test_the_trainers_test_scenes_are_neither_validation_nor_training_scenes(tmp_path):
    """As the trainer builds them: with run seed 1 its training scenes are not run seed 0's, its validation
    scenes are, and no test image is a validation or training image."""
    from bisegunet_training.data import build_dataset

    run = trainer(tmp_path, "seed=1", "data.train_size=6", "data.val_size=6", "data.test_size=6",
                  "data.augment=false")
    images = {name: [ds[i][0] for i in range(len(ds))] for name, ds in (
        ("train", run.train_set), ("val", run.val_set), ("test", next(iter(run.test_loaders.values())).dataset))}
    assert not any(torch.equal(t, other) for t in images["test"] for other in images["val"] + images["train"])
    seed0 = {split: build_dataset("synthetic", split, 64, 128, run.cfg.data.mean, run.cfg.data.std, length=1)[0][0]
             for split in ("train", "val")}
    assert not torch.equal(images["train"][0], seed0["train"]) and torch.equal(images["val"][0], seed0["val"])


def test_resume_restores_the_learning_rate_schedule(tmp_path):
    """--resume continues the cosine schedule where it was, not from its first step."""
    from bisegunet_training.checkpoint import save_checkpoint

    first = trainer(tmp_path, "data.train_size=8", "data.val_size=2")
    for _ in range(4):
        first.optimizer.step()
        first.scheduler.step()
    save_checkpoint(tmp_path / "last.pt", first.state(0))
    resumed = trainer(tmp_path, "data.train_size=8", "data.val_size=2")
    resumed.resume(tmp_path / "last.pt")
    for run in (first, resumed):
        run.optimizer.step()
        run.scheduler.step()
    assert resumed.scheduler.last_epoch == first.scheduler.last_epoch == 5
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(first.optimizer.param_groups[0]["lr"])
    assert first.optimizer.param_groups[0]["lr"] != pytest.approx(first.cfg.lr * first.schedule.lr_factor(1 / 3))


def confusion_on_rank(rank: int, port: int, overrides: list[str], out: Path) -> None:
    """One of two gloo processes: the trainer's validation and test confusion matrices, as reduced over ranks."""
    import numpy as np

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    run = trainer(out, *overrides)
    for name, loader in (("val", run.val_loader), ("test", next(iter(run.test_loaders.values())))):
        np.save(out / f"{name}{rank}.npy", run.confusion(loader).matrix)
    run.dist.close()


def test_two_process_scoring_counts_each_sample_once_and_sums_the_ranks(tmp_path):
    """5 validation and 3 test scenes over 2 gloo processes: each rank's reduced confusion matrix is the
    one-process matrix (a padded sampler counts a scene twice, an unreduced one misses the other rank's)."""
    import socket

    import numpy as np
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = ["data.train_size=4", "data.val_size=5", "data.test_size=3", "batch_size=4"]
    mp.spawn(confusion_on_rank, args=(port, overrides, tmp_path), nprocs=2)
    one = trainer(tmp_path, *overrides)
    for name, loader, scenes in (("val", one.val_loader, 5), ("test", next(iter(one.test_loaders.values())), 3)):
        single = one.confusion(loader).matrix
        labelled = sum(int((loader.dataset[i][1] != 255).sum()) for i in range(scenes))
        assert single.sum() == labelled
        for rank in (0, 1):
            assert np.array_equal(np.load(tmp_path / f"{name}{rank}.npy"), single), (name, rank)


def test_train_val_and_test_scenes_are_distinct():
    from bisegunet_training.data import build_dataset

    first = {split: build_dataset("synthetic", split, 32, 64, [0.5] * 3, [0.25] * 3, length=2)[0][1]
             for split in ("train", "val", "test")}
    assert not torch.equal(first["train"], first["val"]) and not torch.equal(first["val"], first["test"])
    assert not torch.equal(first["train"], first["test"])


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
def test_killed_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """One thread, so every step is bit-for-bit repeatable; the checkpoint restores model, optimizer,
    scheduler, RNG and epoch, so the resumed run must end where the uninterrupted one does."""
    args = ["epochs=3", "iters_per_epoch=5", "tensorboard=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole_log = tmp_path / "whole.log"
    with whole_log.open("w") as log:              # beside the killed run: one thread each
        whole = subprocess.Popen(_train_cmd(f"out_dir={tmp_path / 'whole'}", *args), stdout=log,
                                 stderr=subprocess.STDOUT, env=env)
    killed = tmp_path / "killed"
    try:
        proc = subprocess.Popen(_train_cmd(f"out_dir={killed}", *args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        last = killed / "ci" / "last.pt"
        deadline = time.monotonic() + 120
        while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)                  # the first epoch is saved: killed inside the second
        proc.wait()
        done = load_checkpoint(last)["epoch"]
        assert 1 <= done < 3
        resumed = subprocess.run(_train_cmd(f"out_dir={killed}", *args, "--resume", str(last)), capture_output=True,
                                 text=True, env=env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert whole.wait(timeout=300) == 0, whole_log.read_text()[-2000:]
    finally:
        whole.kill()                                  # only if a failure above left it running
        whole.wait()
    assert [r["epoch"] for r in rows(killed / "ci")] == [0, 1, 2]           # one row per epoch, none repeated
    expected, got = load_checkpoint(tmp_path / "whole" / "ci" / "last.pt"), load_checkpoint(last)
    assert got["epoch"] == expected["epoch"] == 3
    for name, tensor in expected["model"].items():
        assert torch.equal(got["model"][name], tensor), name


def reference_run(cfg) -> tuple:
    """One process, the two ranks' half batches in turn, their losses averaged: what DDP computes.
    Returns the trainer after its last step and its parameters before the first."""
    from torch.utils.data import DistributedSampler

    from bisegunet_training.train import Trainer

    trainer = Trainer(cfg)
    initial = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    half = trainer.cfg.batch_size // 2
    for epoch in range(trainer.cfg.epochs):
        trainer.set_binarization(epoch)
        binary_weights = [trainer.layers[n].weight for n in trainer.order if trainer.layers[n].binarized]
        shards = []
        for rank in range(2):
            sampler = DistributedSampler(trainer.train_set, num_replicas=2, rank=rank, shuffle=True,
                                         seed=trainer.cfg.seed)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        trainer.model.train()
        for step in range(trainer.steps):
            losses = []
            for shard in shards:
                samples = [trainer.train_set[i] for i in shard[step * half:(step + 1) * half]]
                images, labels = torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])
                losses.append(trainer.loss(trainer.model(images), labels, binary_weights)[0])
            trainer.optimizer.zero_grad(set_to_none=True)
            (sum(losses) / 2).backward()
            trainer.optimizer.step()
            trainer.scheduler.step()
    return trainer, initial


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_over_the_same_global_batch(tmp_path):
    """2 gloo processes, each with half of the global batch of 4; DDP averages their gradients. The
    reference is this process taking the same two halves (the same DistributedSampler shards), each
    through the model on its own (BatchNorm statistics per half, as on each rank), averaging the two
    losses and stepping the trainer's own optimizer and schedule. After 3 epochs (float, binarizing,
    binary) every parameter agrees to float rounding."""
    from bisegunet_training.config import load_config
    from bisegunet_training.train_config import TrainConfig

    common = ["epochs=3", "iters_per_epoch=3", "data.augment=false", "tensorboard=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(29500 + os.getpid() % 1000), "-m", "bisegunet_training.train", "--config", CI,
                          f"out_dir={tmp_path / 'two'}", *common], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # as each rank: Adam turns last-bit differences of tiny gradients into lr-sized steps
    try:
        trainer, initial = reference_run(load_config(CI, TrainConfig, [f"out_dir={tmp_path / 'one'}", *common]))
    finally:
        torch.set_num_threads(threads)
    ddp = load_checkpoint(tmp_path / "two" / "ci" / "last.pt")["model"]
    for name, param in trainer.model.named_parameters():
        torch.testing.assert_close(ddp[name], param.detach(), rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    moved = sum(not torch.equal(ddp[name], p) for name, p in initial.items())
    assert moved > 0.9 * len(initial) and len(rows(tmp_path / "two" / "ci")) == 3     # trained, not compared at init


@pytest.mark.slow
def test_two_process_ddp_trains_with_bf16_and_channels_last(tmp_path):
    """The amp/channels_last plumbing under DDP: same global batch (4) over 2 gloo processes and one.
    BatchNorm normalises with each process's own half batch and bf16 rounds, so the first epoch's
    losses agree to a few percent, not bit for bit (the fp32 test above checks parameters exactly)."""
    common = ["epochs=3", "iters_per_epoch=3", "data.augment=false", "tensorboard=false", "amp=bf16",
              "channels_last=true"]
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


def test_malformed_test_input_sizes_are_refused_with_the_key_named(tmp_path, caplog):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "data.test_size=2", "data.test_input_sizes=[512]"]) == 2
    assert "data.test_input_sizes must be [height, width] pairs" in caplog.text and "got [512]" in caplog.text


def test_unknown_regulariser_reduction_is_refused(tmp_path, caplog):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "loss.binary_reduction=median"]) == 2
    assert "loss.binary_reduction must be one of ('mean', 'sum'), got 'median'" in caplog.text


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
