"""The profiler's counts against torch's own FLOP counter, and its report."""
from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bisegunet_training.model import BinaryConv2d, build_model, load_model_config
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
    assert "binary-discounted FLOPs (2 x (binary MACs/64 + float MACs))" in capsys.readouterr().out
    p, w = result["parameters"], result["weight_memory_mb"]
    assert p["binary"] + p["float"] == p["total"] and p["total"] <= 4.3e6
    assert w["fp32"] == pytest.approx(p["total"] * 4 / 1e6)
    assert w["packed_1bit"] == pytest.approx((p["binary"] / 8 + p["float"] * 4) / 1e6)   # 1 bit, or FP32 (alphas too)
    macs = result["macs"]
    assert result["binary_discounted_gflops"] == pytest.approx(2 * (macs["binary_g"] / 64 + macs["float_g"]))


@pytest.mark.parametrize("overrides", [[], ["binary_parts=[stem,encoder,capacity,bottleneck,decoder]"]])
def test_binary_discounted_flops_agree_with_torch_per_layer(overrides):
    """Binary MACs measured by torch's counter on the BinaryConv2d modules alone, float MACs the rest:
    the discounted count is 2 x (binary / 64 + float). Moving the stem into binary_parts moves its MACs."""
    cfg = load_model_config("tiny", overrides)
    model = build_model(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 64, 128))
    per_module = counter.get_flop_counts()
    binary = sum(sum(per_module[f"BiSegUNet.{name}"].values()) for name, m in model.named_modules()
                 if isinstance(m, BinaryConv2d)) / 2
    total = counter.get_total_flops() / 2
    macs = count(model, 64, 128)["macs"]
    assert macs["binary"] == pytest.approx(binary, rel=1e-6)
    assert macs["float"] == pytest.approx(total - binary, rel=0.01)
    stem = sum(sum(v.values()) for k, v in per_module.items() if k == "BiSegUNet.stem") / 2
    assert stem > 0 and (binary > stem if overrides else total - binary > stem)


def test_attention_memory_shrinks_with_kv_pooling():
    base = profile("tiny", 512, 1024)["activation_memory_mb"]["attention_matrix"]
    pooled = profile("config/model/paper.yaml", 512, 1024)["activation_memory_mb"]["attention_matrix"]
    assert base == pytest.approx(2048 * 2048 * 4 / 1e6) and pooled == pytest.approx(base / 4)
