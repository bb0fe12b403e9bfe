"""amp (bf16, fp16 with a gradient scaler) and channels_last: exact binarization, real runs, resume."""
from __future__ import annotations

import pytest
import torch

from bisegunet_training.checkpoint import load_checkpoint, save_checkpoint
from bisegunet_training.config import load_config
from bisegunet_training.model import BinaryConv2d
from bisegunet_training.train import Trainer
from bisegunet_training.train import main as train_main
from bisegunet_training.train_config import TrainConfig

from test_training import CI, rows

torch.set_num_threads(1)

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("standardize", [False, True])
def test_binary_weight_is_exact_fp32_under_autocast(dtype, standardize):
    conv = BinaryConv2d(8, 6, 3, padding=1, standardize=standardize)
    conv.binarized = True
    outside = conv.binary_weight().detach()
    with torch.autocast("cpu", dtype=dtype):
        inside = conv.binary_weight().detach()
        out = conv(torch.randn(1, 8, 6, 6))
    assert inside.dtype == torch.float32 and torch.equal(inside, outside)
    alpha = conv.alpha.detach()
    assert torch.equal(inside.abs(), alpha.view(-1, 1, 1, 1).expand_as(inside))   # +-alpha_c, nothing else
    assert out.dtype == dtype                                                     # the convolution itself is mixed

@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_channels_last_run_trains(tmp_path, amp):
    args = ["--config", CI, f"out_dir={tmp_path}", f"amp={amp}", "channels_last=true", "iters_per_epoch=2"]
    assert train_main(args) == 0
    history = rows(tmp_path / "ci")
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(r["loss_total"])) for r in history)
    state = load_checkpoint(tmp_path / "ci" / "last.pt")
    assert all(state["binarized"].values()) and state["train_config"]["amp"] == amp
    assert ("scale" in state["scaler"]) == (amp == "fp16")     # only fp16 scales the loss

def test_resume_restores_the_gradient_scaler(tmp_path):
    overrides = [f"out_dir={tmp_path}", "amp=fp16", "epochs=3", "iters_per_epoch=1", "tensorboard=false"]
    trainer = Trainer(load_config(CI, TrainConfig, overrides))
    trainer.fit()
    last = tmp_path / "ci" / "last.pt"
    state = load_checkpoint(last)
    state["scaler"]["scale"] = 1024.0                    # as if it had backed off after overflowing steps
    save_checkpoint(last, {k: v for k, v in state.items() if k != "format"})
    resumed = Trainer(load_config(CI, TrainConfig, overrides))
    resumed.resume(last)
    assert resumed.precision.scaler.get_scale() == 1024.0

def test_unknown_amp_is_refused(tmp_path, caplog):
    assert train_main(["--config", CI, f"out_dir={tmp_path}", "amp=fp8"]) == 2
    assert "amp must be one of off, bf16, fp16, got 'fp8'" in caplog.text
    assert not (tmp_path / "ci").exists()
