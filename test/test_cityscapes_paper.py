"""config/train/cityscapes_paper.yaml end to end on a generated Cityscapes-layout tree: a few steps of the
recipe (tiny model, small crops: overrides), export of best.pt, a bag of the val split through
`bisegunet-make-bag --source cityscapes`, `bisegunet-eval-bag` on it; and the test split scored at the
label's full resolution, checked against a scoring done here."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bisegunet_ros.classes import cityscapes_label_to_train_id
from bisegunet_ros.metrics import ConfusionMatrix
from bisegunet_training.data import render_scene
from bisegunet_training.normalisation import normalise

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config/train/cityscapes_paper.yaml"
FULL = (64, 128)          # the generated "full resolution" (Cityscapes: 1024x2048)


def write_cityscapes(root: Path, counts: dict[str, int]) -> None:
    """Synthetic scenes as leftImg8bit/<split>/c/*_leftImg8bit.png and gtFine/<split>/c/*_gtFine_labelIds.png,
    the masks in Cityscapes label ids (the first label id of each train id; ignore -> 0, unlabeled)."""
    lut = cityscapes_label_to_train_id()
    label_id = np.zeros(256, np.uint8)
    for lid in range(255, -1, -1):
        if lut[lid] != 255:
            label_id[lut[lid]] = lid
    for k, (split, count) in enumerate(counts.items()):
        for i in range(count):
            rgb, train_ids = render_scene(500 + k, i, *FULL)
            name = f"c_{i:06d}_000019"
            for folder, suffix, image in (("leftImg8bit", "leftImg8bit", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)),
                                          ("gtFine", "gtFine_labelIds", label_id[train_ids])):
                path = root / folder / split / "c" / f"{name}_{suffix}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), image)


def miou_at_label_resolution(checkpoint: Path, root: Path, height: int, width: int) -> float:
    """best.pt on the val split: frames resized to the network, logits upsampled bilinearly to the label."""
    from bisegunet_training.data.datasets import cityscapes_pairs
    from bisegunet_training.export import model_from_checkpoint

    model, state = model_from_checkpoint(checkpoint)
    lut, matrix = cityscapes_label_to_train_id(), ConfusionMatrix(19)
    for image_path, mask_path in cityscapes_pairs(root, "val"):
        rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(normalise(small, state["data"]["mean"], state["data"]["std"]).transpose(2, 0, 1).copy())
        with torch.no_grad():
            logits = F.interpolate(model(x[None]), size=FULL, mode="bilinear", align_corners=False)
        matrix.update(lut[cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)], logits.argmax(1)[0].numpy())
    return matrix.summary()["miou"]


def test_paper_recipe_trains_exports_and_evaluates_a_cityscapes_tree(tmp_path, caplog):
    from bisegunet_ros.evaluation.evaluate_bag import main as eval_bag
    from bisegunet_training.export import main as export
    from bisegunet_training.make_bag import main as make_bag
    from bisegunet_training.train import main as train

    data = tmp_path / "cityscapes"
    write_cityscapes(data, {"train": 4, "val": 3})
    overrides = [f"data.root={data}", f"out_dir={tmp_path / 'runs'}", "model=tiny", "epochs=3", "iters_per_epoch=1",
                 "batch_size=2", "data.height=32", "data.width=64", "data.test_input_sizes=[[32, 64], [64, 128]]",
                 "workers=0", "device=cpu", "tensorboard=false"]
    assert train(["--config", str(PAPER), *overrides]) == 0
    run = tmp_path / "runs" / "cityscapes_paper"
    assert "selection-biased" in caplog.text                         # val chose best.pt and is scored
    test = json.loads((run / "test.json").read_text())
    assert test["test_split"] == "val" and test["test_scenes"] == 3 and set(test["test_by_input_size"]) == {
        "32x64", "64x128"}
    for size, (h, w) in (("32x64", (32, 64)), ("64x128", (64, 128))):
        assert test["test_by_input_size"][size]["miou"] == pytest.approx(
            miou_at_label_resolution(run / "best.pt", data, h, w), abs=1e-9), size
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    cfg = state["train_config"]
    assert (cfg["batch_size"], cfg["lr"], cfg["loss"]["binary_reduction"], cfg["data"]["kind"]) == (
        2, 0.001, "sum", "cityscapes")
    assert state["model_config"]["estimator"] == "ste"               # eq. 22, through model_overrides

    onnx = tmp_path / "model.onnx"
    assert export(["--checkpoint", str(run / "best.pt"), "--out", str(onnx)]) == 0
    assert make_bag([str(tmp_path / "bag"), "--source", "cityscapes", "--root", str(data), "--split", "val"]) == 0
    assert eval_bag([str(tmp_path / "bag"), "--model", str(onnx), "--backend", "onnxruntime",
                     "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["frames"]["evaluated"] == 3          # every val frame through the exported model


def test_paper_recipe_is_table_10():
    """The YAML as the trainer reads it: Table 10's numbers, the phases at epochs 50 and 150."""
    from bisegunet_training.config import load_config
    from bisegunet_training.schedule import make_schedule
    from bisegunet_training.train_config import TrainConfig

    cfg = load_config(PAPER, TrainConfig)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.loss.binary_weight, cfg.amp) == (180, 16, 1e-3, 1e-4, "off")
    assert make_schedule(cfg.phases, cfg.epochs, tuple(cfg.phase_fractions), cfg.min_lr_ratio).boundaries == (50, 150)
    assert cfg.model == "config/model/paper.yaml" and cfg.model_overrides == ["estimator=ste"]
    assert cfg.data.test_input_sizes == [[1024, 2048], [512, 1024]] and cfg.data.kind == "cityscapes"
