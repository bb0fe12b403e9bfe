"""Bad training configuration stops bisegunet-train before any work: one line naming the key and what is
accepted, exit status 2, no run directory. And an existing run is never silently overwritten."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bisegunet_training.config import ConfigError, load_config
from bisegunet_training.model import load_model_config
from bisegunet_training.train import main as train_main
from bisegunet_training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "config/train/ci.yaml")

BAD_VALUES = [
    ("epochs=abc", "epochs: 'abc' is not an integer"),
    ("lr=fast", "lr: 'fast' is not a number"),
    ("data.height=abc", "data.height: 'abc' is not an integer"),
    ("data.augment=maybe", "data.augment: 'maybe' is not true or false"),
    ("iters_per_epoch=-1", "iters_per_epoch: -1 is out of range; accepted: at least 0"),
    ("data.difficulty=2", "data.difficulty: 2.0 is out of range; accepted: between 0 and 1"),
    ("device=gpu", "device: 'gpu' is not accepted; accepted: auto, cpu, cuda or cuda:N"),
    ("data.mean=[0.5, x, 0.5]", "data.mean: [0.5, 'x', 0.5] is not a list of numbers"),
    ("epochs=true", "epochs: True is not an integer"),
    ("loss.class_weights=7", "loss.class_weights: 7 is not a list of numbers or a string or null"),
    ('model_overrides=["stem_kernels=[3, a]"]', "stem_kernels: [3, 'a'] is not a list of integers"),
    ("model_overrides=[num_classes=0]", "num_classes: 0 is out of range; accepted: between 1 and 256"),
    ("lr=[", "override 'lr=[': not valid YAML"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_key_before_any_work(tmp_path, caplog, override, message):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", override]) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0].getMessage() and "\n" not in errors[0].getMessage()
    assert not any(tmp_path.iterdir())          # nothing written: no run directory, no metrics.jsonl


def test_broken_yaml_is_one_line_with_the_file_and_line(tmp_path, caplog):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nepochs: [1\n")
    assert train_main(["--config", str(broken)]) == 2
    assert f"{broken}: not valid YAML (line 3, column 1)" in caplog.text and "Traceback" not in caplog.text


def test_values_of_the_right_type_load_as_the_field_wants():
    cfg = load_config(CI, TrainConfig, ["lr=1", "name=2024", "device=cuda:1", "loss.class_weights=auto",
                                        "data.mean=[0, 1, 0.5]"])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.name == "2024" and cfg.device == "cuda:1"
    assert cfg.loss.class_weights == "auto" and cfg.data.mean == [0.0, 1, 0.5]
    for name in ("tiny", "small", "paper", "torchvision:lraspp_mobilenet_v3_large"):
        load_model_config(name)
    with pytest.raises(ConfigError, match="ci.yaml: data: expected a mapping, got 3"):
        load_config(CI, TrainConfig, ["data=3"])


def test_an_existing_run_is_refused_and_resume_continues_it(tmp_path, caplog):
    args = ["--config", CI, f"out_dir={tmp_path}", "iters_per_epoch=1", "data.val_size=2"]
    assert train_main(args) == 0
    before = (tmp_path / "ci" / "metrics.jsonl").read_text()
    assert train_main(args) == 2
    assert f"{tmp_path / 'ci'} holds a run named 'ci' already; give another name=NAME, continue it with " \
           f"--resume {tmp_path / 'ci' / 'last.pt'}, or replace it with --overwrite" in caplog.text
    assert (tmp_path / "ci" / "metrics.jsonl").read_text() == before
    assert train_main([*args, "epochs=4", "--resume", str(tmp_path / "ci" / "last.pt")]) == 0
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "ci" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2, 3]
