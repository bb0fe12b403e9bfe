"""bench/demo.py's mechanics: a bag, the node in its own process through bisegunet-eval-bag --live, real rclpy."""
from __future__ import annotations

import json
from pathlib import Path

from bench import demo
from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]


def test_demo_bench_scores_every_model_at_every_rate(tmp_path):
    shipped = ROOT / "models" / f"{SHIPPED_MODEL}.onnx"
    assert demo.main(["--smoke", "--frames", "3", "--repeats", "1", "--rates", "1", "--models", str(shipped),
                      "--out", str(tmp_path / "demo")]) == 0
    (row,) = json.loads((tmp_path / "demo.json").read_text())["results"]
    assert row["model"] == shipped.name and row["rate"] == 1
    assert len(row["fps"]["values"]) == 1 and row["fps"]["median"] > 0 and row["answered_percent"]["median"] > 0
    assert 0 < row["latency_p50_ms"]["median"] <= row["latency_p90_ms"]["median"]
    assert 5 < row["miou_percent"]["median"] < 100          # the shipped model segments the scenes
    assert f"| {shipped.name} | 1 |" in (tmp_path / "demo.md").read_text()
