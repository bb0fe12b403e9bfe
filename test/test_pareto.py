"""bench.pareto in smoke mode: train (2 seeds a row), export, INT8, time interleaved, table, goal and plot for all
eight rows at toy sizes; README's generated block; and torchvision models through the model factory and the profiler.

The full run is a benchmark (`make bench`); this keeps its path from rotting.
"""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench import pareto

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pareto")
    run = subprocess.run([sys.executable, "-m", "bench.pareto", "--smoke", "--jobs", "2", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}   # rows[0]: the header


@pytest.mark.slow
def test_every_row_has_seeds_sizes_and_interleaved_latency(smoke):
    result = json.loads((smoke / "pareto.json").read_text())
    assert list(result["rows"]) == [e.key for e in pareto.ENTRIES]
    for key, row in result["rows"].items():
        miou = row["test_miou"]
        assert len(miou["values"]) == 2 and miou["mean"] == pytest.approx(statistics.mean(miou["values"]))
        assert miou["sd"] == pytest.approx(statistics.stdev(miou["values"]))
        assert all(math.isfinite(v) for v in [row["parameters"], row["real_gflops"], *miou["values"]]), key
        for precision in ("fp32", "int8"):
            ms = result["latency"][precision]["ms"][key]
            assert len(ms["values"]) == result["budget"]["repetitions"] and ms["min"] <= ms["median"] <= ms["max"]
    rows = result["rows"]
    assert rows["fast_float"]["parameters"] == rows["fast_binary"]["parameters"]
    assert rows["fast_binary"]["weight_memory_mb"] < rows["fast_float"]["weight_memory_mb"] / 10   # packed 1-bit
    assert rows["fast_float"]["real_gflops"] < rows["small_float"]["real_gflops"] / 4     # strided entry, early stop
    assert pareto.missing_runs(pareto.SMOKE, smoke / "runs", []) == []      # a rerun trains nothing


@pytest.mark.slow
def test_recorded_trainings_are_reused_when_their_folders_are_gone(smoke):
    """pareto.runs.json: what a later sitting (whose runs/ is gone) resumes from: nothing to train, the same scores."""
    result = json.loads((smoke / "pareto.json").read_text())
    recorded = pareto.read_ledger(smoke / "pareto.runs.json")
    assert sorted(r["name"] for r in recorded) == sorted(f"{e.key}_seed{s}" for e in pareto.ENTRIES for s in (0, 1))
    runs, moved = smoke / "runs", smoke / "runs.gone"
    runs.rename(moved)
    try:
        assert pareto.missing_runs(pareto.SMOKE, runs, recorded) == []
        assert len(pareto.missing_runs(pareto.SMOKE, runs, recorded[1:])) == 1
        for e in pareto.ENTRIES:
            kept = pareto.accuracy(e, pareto.SMOKE, runs, recorded)["test_miou"]["values"]
            assert kept == pytest.approx(result["rows"][e.key]["test_miou"]["values"])
    finally:
        moved.rename(runs)


@pytest.mark.slow
def test_markdown_agrees_with_json_states_the_goal_and_plot_is_written(smoke):
    result = json.loads((smoke / "pareto.json").read_text())
    text = (smoke / "pareto.md").read_text()
    table = table_rows(text)
    assert list(table) == [e.label for e in pareto.ENTRIES]
    for e in pareto.ENTRIES:
        row, cells = result["rows"][e.key], table[e.label]
        assert float(cells[0]) == pytest.approx(row["parameters"] / 1e6, abs=0.005)
        assert float(cells[3].split("±")[0]) == pytest.approx(row["test_miou"]["mean"], abs=0.51)
        assert float(cells[4].split("(")[0]) == pytest.approx(result["latency"]["fp32"]["ms"][e.key]["median"],
                                                               rel=0.05)
        assert row["command"] in text
    assert result["goal"] == pareto.goal(result["rows"], result["latency"])
    for g in result["goal"]:
        label = result["rows"][g["row"]]["label"]
        assert f"- {label}: **{'met' if g['met'] else 'not met'}**" in text
    assert result["command"] in text and result["machine"]["cpu"] in text
    assert (smoke / "pareto.png").stat().st_size > 10_000


def timings(fast_ms: float, lraspp_ms: float) -> dict:
    return {"fp32": {"ms": {"lraspp": {"median": lraspp_ms}, "fast_float": {"median": fast_ms},
                            "fast_binary": {"median": fast_ms}}}}


def rows(fast_mean: float, fast_sd: float) -> dict:
    return {"lraspp": {"test_miou": {"mean": 10.0, "sd": 0.5}},
            "fast_float": {"test_miou": {"mean": fast_mean, "sd": fast_sd}},
            "fast_binary": {"test_miou": {"mean": fast_mean, "sd": fast_sd}}}


@pytest.mark.parametrize("fast_mean,fast_ms,met", [(11.1, 90.0, True), (10.9, 90.0, False), (11.1, 101.0, False),
                                                   (11.1, 100.0, True)])
def test_goal_needs_both_the_latency_and_an_mIoU_gain_beyond_the_combined_sd(fast_mean, fast_ms, met):
    """Met: FP32 latency <= LR-ASPP's and mean mIoU above LR-ASPP's by more than sd + sd (here 0.5 + 0.5)."""
    assert [g["met"] for g in pareto.goal(rows(fast_mean, 0.5), timings(fast_ms, 100.0))] == [met, met]


def test_readme_shows_the_block_generated_from_bench_pareto_json():
    path = ROOT / "bench/pareto.json"
    block = pareto.readme_block(json.loads(path.read_text()) if path.is_file() else None)
    readme = (ROOT / "README.md").read_text()
    assert block in readme, "README's pareto block is not what bench/pareto.json gives: run `python -m bench.pareto`"
    assert pareto.with_readme_block(readme, block) == readme


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


def test_fast_preset_is_the_candidate_the_committed_sweep_chose():
    """config/model/fast.yaml is bench/fast_sweep.json's pick, not a hand-made variant of it."""
    from bench.fast_sweep import CANDIDATES
    from bisegunet_training.model import load_model_config

    chosen = json.loads((ROOT / "bench/fast_sweep.json").read_text())["chosen"]
    base, overrides = CANDIDATES[chosen]
    assert load_model_config("fast") == load_model_config(base, [*overrides, "name=fast"])
