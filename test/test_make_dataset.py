"""bisegunet-make-dataset: the synthetic scenes, pre-rendered, in the layout the folders kind trains from."""
from __future__ import annotations

import json

import cv2
import numpy as np

from bisegunet_training.data import SPLIT_SEED_OFFSETS
from bisegunet_training.data.scenes import TRAIN_RENDER_SCALE, render_scene
from bisegunet_training.make_dataset import main as make_dataset_main
from bisegunet_training.train import main as train_main

from test_training import CI, rows


def test_prerendered_scenes_are_the_synthetic_ones_and_train(tmp_path, caplog):
    out = tmp_path / "scenes"
    assert make_dataset_main([str(out), "--train", "4", "--val", "2", "--height", "64", "--width", "128",
                              "--seed", "7", "--workers", "2", "--test", "2"]) == 0
    train_h, train_w = round(64 * TRAIN_RENDER_SCALE), round(128 * TRAIN_RENDER_SCALE)
    for split, index, seed, h, w in [("train", 2, 7, train_h, train_w), ("val", 1, 7 + SPLIT_SEED_OFFSETS["val"], 64, 128),
                                     ("test", 0, 7 + SPLIT_SEED_OFFSETS["test"], 64, 128)]:
        rgb, label = render_scene(seed, index, h, w)
        image = cv2.imread(str(out / split / "images" / f"{index:06d}.png"))
        mask = cv2.imread(str(out / split / "masks" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(image, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))   # lossless, exactly the scene
        assert mask.dtype == np.uint8 and mask.ndim == 2 and np.array_equal(mask, label)   # class ids
    assert len(list((out / "train" / "images").iterdir())) == 4 and len(list((out / "val" / "masks").iterdir())) == 2
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "iters_per_epoch=1", "data.kind=folders",
                       f"data.root={out}", "data.test_size=2"]) == 0
    assert len(rows(tmp_path / "ci")) == 3
    # a second time into the same directory: refused with one line, nothing overwritten
    assert make_dataset_main([str(out), "--train", "1", "--val", "1", "--workers", "1"]) == 1
    assert "exists and is not empty" in caplog.text
    assert len(list((out / "train" / "images").iterdir())) == 4


def test_speed_benches_write_json_and_markdown(tmp_path):
    """The mechanics of bench/train_speed.py and bench/data_speed.py at --smoke size on CPU (no numbers checked
    beyond being positive: performance lives in the benches' own reports)."""
    from bench import data_speed, train_speed

    assert train_speed.main(["--smoke", "--repeats", "1", "--settings", "fp32", "bf16 + channels_last",
                             "--out", str(tmp_path / "train_speed")]) == 0
    result = json.loads((tmp_path / "train_speed.json").read_text())
    assert [r["setting"] for r in result["results"]] == ["fp32", "bf16 + channels_last"]
    assert all(r["images_per_s_median"] > 0 for r in result["results"])
    assert "| bf16 + channels_last |" in (tmp_path / "train_speed.md").read_text()
    assert data_speed.main(["--smoke", "--repeats", "1", "--out", str(tmp_path / "data_speed")]) == 0
    row = json.loads((tmp_path / "data_speed.json").read_text())["results"][0]
    assert row["synthetic"]["samples_per_s_median"] > 0 and row["folders"]["samples_per_s_median"] > 0
