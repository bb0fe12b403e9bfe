"""bisegunet-make-bag as a user meets it: errors name its flags (never training config keys), bad numbers
stop before any work, a failure leaves no half-written bag, and the bag records the classes of its labels."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bisegunet_ros.classes import CITYSCAPES
from bisegunet_ros.evaluation.bag_io import class_names_of
from bisegunet_training.make_bag import main as make_bag


def write_folders(root: Path, mask: np.ndarray) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    assert cv2.imwrite(str(root / "images" / "a.png"), np.zeros((*mask.shape[:2], 3), np.uint8))
    assert cv2.imwrite(str(root / "masks" / "a.png"), mask)


def test_errors_name_the_flags_and_leave_no_bag(tmp_path, caplog):
    write_folders(tmp_path / "data", np.full((16, 32, 3), 7, np.uint8))      # colour masks, read as ids
    assert make_bag([str(tmp_path / "bag"), "--source", "folders", "--root", str(tmp_path / "data")]) == 1
    assert "--mask-format is ids, so a mask must be a single-channel PNG" in caplog.text
    assert "(colour masks: --mask-format colors)" in caplog.text and "data." not in caplog.text
    assert not (tmp_path / "bag").exists()
    assert make_bag([str(tmp_path / "bag"), "--source", "folders", "--root", str(tmp_path)]) == 1
    assert "set --root to the dataset's top directory" in caplog.text and "data.root" not in caplog.text


@pytest.mark.parametrize("args, message", [(["--fps", "0"], "argument --fps: expected a number > 0, got '0'"),
                                           (["--frames", "-1"], "argument --frames: expected an integer >= 0"),
                                           (["--height", "0"], "argument --height: expected an integer >= 8"),
                                           (["--difficulty", "3"], "argument --difficulty: expected a number >= 0 "
                                                                   "and <= 1, got '3'"),
                                           (["--frames", "0"], "--frames 0 (all) is for datasets")])
def test_bad_numbers_stop_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        make_bag([str(tmp_path / "bag"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


def test_an_existing_output_is_left_alone(tmp_path, caplog):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "mine.txt").write_text("keep\n")
    assert make_bag([str(tmp_path / "bag"), "--frames", "1", "--height", "16", "--width", "32"]) == 1
    assert f"{tmp_path / 'bag'} exists" in caplog.text and (tmp_path / "bag" / "mine.txt").read_text() == "keep\n"


def test_the_bag_records_its_label_classes(tmp_path):
    assert make_bag([str(tmp_path / "bag"), "--frames", "1", "--height", "16", "--width", "32"]) == 0
    assert class_names_of(tmp_path / "bag") == list(CITYSCAPES.names)
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes:\n  - {name: ground, color: [0, 0, 0]}\n  - {name: thing, color: [255, 0, 0]}\n")
    write_folders(tmp_path / "data", np.zeros((16, 32), np.uint8))
    assert make_bag([str(tmp_path / "own"), "--source", "folders", "--root", str(tmp_path / "data"),
                     "--classes", str(classes)]) == 0
    assert class_names_of(tmp_path / "own") == ["ground", "thing"]
