"""init_from the shipped ONNX model (no checkpoint ships): its folded weights give back a torch model that
computes what the exported graph does, and a fine-tuning run starts from it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bisegunet_ros.model_info import ModelInfo
from bisegunet_ros.resources import SHIPPED_MODEL
from bisegunet_training.data import render_scene
from bisegunet_training.finetune import load_matching_weights
from bisegunet_training.model import binary_layers, build_model, load_model_config
from bisegunet_training.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / f"{SHIPPED_MODEL}.onnx"
CI = str(ROOT / "config/train/ci.yaml")


def test_the_shipped_onnx_model_loads_back_into_torch_and_predicts_the_same_labels():
    info = ModelInfo.from_onnx(SHIPPED)
    model = build_model(load_model_config(info.preset, ["weight_standardization=true"]))
    loaded, kept = load_matching_weights(model, SHIPPED)
    assert kept == [] and len(loaded) == len(model.state_dict())
    for _, layer in binary_layers(model):
        layer.binarized = info.binarized
    rgb = np.stack([render_scene(3, i, info.input_height, info.input_width, 0.6)[0] for i in range(2)])
    expected = ort.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"]).run(
        ["labels"], {"pixels": rgb})[0]
    x = (torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255 - torch.tensor(info.mean).view(1, 3, 1, 1)) \
        / torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        labels = model.eval()(x).argmax(1).numpy()
    assert (labels == expected).mean() > 0.999            # the same function, up to float rounding at ties


def test_fine_tuning_starts_from_the_shipped_model(tmp_path, caplog):
    preset = ModelInfo.from_onnx(SHIPPED).preset
    args = ["--config", CI, f"out_dir={tmp_path}", "name=tuned", f"model={preset}", f"init_from={SHIPPED_MODEL}",
            "phases=binary_only", "epochs=1", "iters_per_epoch=2", "data.val_size=4", "data.height=256",
            "data.width=512", "model_overrides=[weight_standardization=true]"]    # fast's logits are at stride 8
    with caplog.at_level("INFO"):
        assert train_main(args) == 0
    total = len(build_model(load_model_config(preset)).state_dict())
    assert f"init_from {SHIPPED_MODEL}: loaded {total} of {total} tensors" in caplog.text
    (row,) = [json.loads(line) for line in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    assert row["val_miou_network_res"] > 0.2          # a fresh fast model after the same 2 steps: under 1 per cent
