"""The profiler's counts against torch's own FLOP counter, and its report."""
from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bisegunet_training.model import build_model, load_model_config
from bisegunet_training.profile import count, main, profile


@pytest.mark.parametrize("overrides", [[], ["attention_kv_pool=2"], ["capacity_variant=ms_cbam"]])
def test_real_flops_agree_with_torch_flop_counter(overrides):
    model = build_model(load_model_config("tiny", overrides)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 64, 128))
    macs = count(model, 64, 128)["macs"]
    ours = 2 * (macs["binary"] + macs["float"])
    assert ours == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_report_numbers_are_consistent(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["--model", "small", "--size", "512", "1024", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "paper-convention OPs (BOPs/64 + FLOPs)" in capsys.readouterr().out
    p, w = result["parameters"], result["weight_memory_mb"]
    assert p["binary"] + p["float"] == p["total"] and p["total"] <= 4.3e6
    assert w["fp32"] == pytest.approx(p["total"] * 4 / 1e6)
    assert w["ratio"] > 10 and result["paper_convention_gops"] < result["real_gflops"]


def test_attention_memory_shrinks_with_kv_pooling():
    base = profile("tiny", 512, 1024)["activation_memory_mb"]["attention_matrix"]
    pooled = profile("config/model/paper.yaml", 512, 1024)["activation_memory_mb"]["attention_matrix"]
    assert base == pytest.approx(2048 * 2048 * 4 / 1e6) and pooled == pytest.approx(base / 4)
