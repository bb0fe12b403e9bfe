"""bench.compare in smoke mode (about a minute): train, export, INT8, score, time, table and plot for all six
models at toy sizes; and torchvision models through the model factory and the profiler.

The full comparison is a benchmark (`make bench`); this keeps its path from rotting.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["BiSegUNet tiny, binarized", "BiSegUNet tiny, float", "BiSegUNet small, binarized", "BiSegUNet small, float",
          "LR-ASPP MobileNetV3-Large", "DeepLabV3 MobileNetV3-Large"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    run = subprocess.run([sys.executable, "-m", "bench.compare", "--smoke", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def numbers(row: dict) -> list[float]:
    latency = [v for sizes in row["latency_ms"].values() for t in sizes.values() for v in t.values()]
    return [row[k] for k in ("miou", "mean_dice", "pixel_accuracy", "int8_miou", "parameters", "real_gflops",
                             "weight_memory_mb", "train_minutes")] + latency


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}   # rows[0]: the header


@pytest.mark.slow
def test_all_six_rows_with_finite_numbers(smoke):
    result = json.loads((smoke / "RESULTS.json").read_text())
    assert [r["label"] for r in result["rows"]] == LABELS
    for row in result["rows"]:
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers(row)), row["label"]
        assert set(row["latency_ms"]) == {"fp32", "int8"} and all(len(s) == 2 for s in row["latency_ms"].values())
    binarized = {r["label"]: r["binarized"] for r in result["rows"]}
    assert binarized == dict(zip(LABELS, [True, False, True, False, False, False]))
    tiny_binary, tiny_float = result["rows"][:2]
    assert tiny_binary["weight_memory_mb"] < tiny_float["weight_memory_mb"] / 10     # packed 1-bit
    assert tiny_binary["parameters"] == tiny_float["parameters"]


@pytest.mark.slow
def test_markdown_agrees_with_json_and_plot_is_written(smoke):
    result = json.loads((smoke / "RESULTS.json").read_text())
    text = (smoke / "RESULTS.md").read_text()
    table = table_rows(text)
    assert list(table) == LABELS
    for row in result["rows"]:
        cells = table[row["label"]]
        assert float(cells[0]) == pytest.approx(row["parameters"] / 1e6, abs=0.005)
        assert float(cells[3]) == pytest.approx(100 * row["miou"], abs=0.005)
        assert float(cells[7].split("/")[0]) == pytest.approx(row["latency_ms"]["fp32"]["32x64"]["median_ms"],
                                                               abs=0.05)
        assert row["command"] in text
    assert result["command"] in text and result["machine"]["cpu"] in text
    assert (smoke / "miou_vs_latency.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", ["torchvision:lraspp_mobilenet_v3_large", "torchvision:deeplabv3_mobilenet_v3_large"])
def test_torchvision_models_build_and_profile_like_torch_counts_them(name):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bisegunet_training.model import binary_layers, build_model, load_model_config
    from bisegunet_training.profile import count, profile

    model = build_model(load_model_config(name)).eval()
    assert not binary_layers(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        logits = model(torch.zeros(1, 3, 64, 128))
    assert logits.shape == (1, 19, 64, 128)          # a tensor, not torchvision's {"out": ...}
    macs = count(model, 64, 128)["macs"]
    assert 2 * macs["float"] == pytest.approx(counter.get_total_flops(), rel=0.01) and macs["binary"] == 0
    result = profile(name, 512, 1024)
    assert result["activation_memory_mb"] is None and result["weight_memory_mb"]["ratio"] == 1
