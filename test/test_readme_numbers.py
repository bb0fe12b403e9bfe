"""README's Numbers table is what `python -m bench.summary` makes of the committed bench files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import summary
from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]


def test_readme_numbers_match_the_bench_files(capsys):
    assert summary.main(["--check"]) == 0, capsys.readouterr().out + "\nrun `python -m bench.summary`"


def test_check_fails_with_a_diff_when_readme_drifts(tmp_path, capsys):
    (tmp_path / "README.md").write_text(f"# x\n\n{summary.BEGIN}\n| hand | 99 % | typed |\n{summary.END}\n")
    assert summary.main(["--check"], root=tmp_path) == 1
    assert "-| hand | 99 % | typed |" in capsys.readouterr().out
    assert summary.main([], root=tmp_path) == 0
    assert summary.main(["--check"], root=tmp_path) == 0


def test_a_missing_or_older_file_says_not_measured(tmp_path):
    node = next(r for r in summary.ROWS if r[3] is summary.node_host)
    line, short = summary.row(tmp_path, *node)
    assert "not measured (run `python -m bench.node`)" in line and short == []
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench/node.json").write_text(json.dumps({"machine": {}, "node": {}}))     # an older schema
    line, _ = summary.row(tmp_path, *node)
    assert "not measured: `bench/node.json` is not in the form the current script writes" in line


def spread(median, low, high):
    return {"median": median, "min": low, "max": high, "values": [low, median, high]}


def test_node_row_from_a_hand_made_file(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench/node.json").write_text(json.dumps({
        "machine": {"date": "2026-01-02T03:04:05+00:00", "cpu": "Some CPU", "cores": 2,
                    "load": {"loadavg_before": [3.25, 1, 1], "loadavg_after": [4.5, 1, 1], "busy_others": []}},
        "preset": "small", "network": "512x1024", "frame": "512x1024", "frames": 20, "repeats": 3,
        "cpu_ms_outside_inference_per_frame": {"before": spread(40.0, 39.0, 42.5), "after": spread(6.5, 6.0, 7.25)},
        "cpu_ms_total_per_frame": {"before": spread(100.0, 99.0, 101.0), "after": spread(111.0, 110.0, 112.0)},
        "stages": {"before": {"from_engine_bytes_per_frame": 39845888, "cpu_ms": {"inference": spread(60, 59, 61)}},
                   "after": {"from_engine_bytes_per_frame": 1048576, "cpu_ms": {"inference": spread(104, 103, 105)}}},
        "node": {}}))
    node = next(r for r in summary.ROWS if r[3] is summary.node_host)
    line, short = summary.row(tmp_path, *node)
    assert "`small` at a 512x1024 network" in line
    assert "total CPU per frame, inference included: before 100 (99.0-101) ms, after 111 (110-112) ms (+11 %)" in line
    assert "of which inference 60.0 (59.0-61.0) ms before, 104 (103-105) ms after" in line
    assert "outside inference 40.0 (39.0-42.5) ms before, 6.50 (6.00-7.25) ms after" in line
    assert "2026-01-02, Some CPU 2 cores, no GPU, load 3.2 at start, 4.5 at end" in line
    assert len(short) == 2 and "over the goal of 5 ms" in short[0] and "grew +11 %" in short[1]


def test_a_file_without_the_load_says_so():
    assert summary.machine({"machine": {"date": "2026-01-02", "cpu": "c", "cores": 2}}).endswith("load not recorded")


def test_training_row_gives_the_relative_gap_and_flags_those_wider_than_the_papers(tmp_path):
    (tmp_path / "bench").mkdir()
    row = {"seeds": [0, 1, 2], "test_miou_min": 0, "test_miou_max": 0, "best_val_miou_mean": 0, "minutes_mean": 1}
    gap = {"gap_standard_error": 0.37, "relative_gap_standard_error": 0.012, "degrees_of_freedom": 4}
    (tmp_path / "bench/training.json").write_text(json.dumps({
        "machine": {"date": "2026-01-02", "cpu": "c", "cores": 16, "gpu": "G", "training_devices": ["cuda"]},
        "paper": {"float_miou": 73.1, "binary_miou": 69.0}, "paper_relative_gap": 4.1 / 73.1, "confidence": 0.95,
        "rows": {"float": {**row, "test_miou_mean": 30.0, "test_miou_sd": 0.4, "reference": None},
                 "paper": {**row, **gap, "test_miou_mean": 24.0, "test_miou_sd": 0.5, "reference": "float",
                           "gap_points": 6.0, "relative_gap": 0.2, "relative_gap_interval": [0.167, 0.233],
                           "verdict": "wider than the paper's"},
                 "irnet": {**row, **gap, "test_miou_mean": 28.5, "test_miou_sd": 0.3, "reference": "float",
                           "gap_points": 1.5, "relative_gap": 0.05, "relative_gap_interval": [0.017, 0.083],
                           "verdict": "undecided"},
                 "lonely": {**row, "test_miou_mean": 20.0, "test_miou_sd": 0.2, "reference": "float_gone"}}}))
    line, short = summary.row(tmp_path, *next(r for r in summary.ROWS if r[3] is summary.training))
    assert ("paper 24.0 ± 0.5 (vs float: gap 6.0 ± 0.4 points, 20 ± 1 % [95 %: 16.7 to 23.3 %], wider than the "
            "paper's)") in line
    assert "irnet 28.5 ± 0.3 (vs float: gap 1.5 ± 0.4 points, 5 ± 1 % [95 %: 1.7 to 8.3 %], undecided)" in line
    assert "lonely 20.0 ± 0.2 (no run of its reference float_gone yet)" in line
    assert "the paper's relative gap: 4.1 / 73.1 = 5.6 %" in line
    assert len(short) == 1 and short[0].startswith("`paper`")


def test_transport_row_flags_lost_frames(tmp_path):
    (tmp_path / "bench").mkdir()
    cell = {"latency_ms": {"median": 12.0, "p90": 20.0, "max": 30.0}}
    (tmp_path / "bench/transport.json").write_text(json.dumps({
        "machine": {"date": "2026-01-02", "cpu": "c", "cores": 2}, "frame": "512x1024", "seconds": 3, "repeats": 1,
        "rows": [{"profile": "defaults", "reliability": "best_effort", "cameras": 1, "rate_hz": 10,
                  "runs": [{**cell, "delivered": 0.25}]},
                 {"profile": "shm", "reliability": "best_effort", "cameras": 1, "rate_hz": 10,
                  "runs": [{**cell, "delivered": 1.0}]}]}))
    line, short = summary.row(tmp_path, *next(r for r in summary.ROWS if r[3] is summary.transport))
    assert "defaults, best effort: 1 x 10 Hz 25 % (12 ms); shm, best effort: 1 x 10 Hz 100 % (12 ms)" in line
    assert short == ["camera frames lost between processes in 1 of 2 cells of bench/transport.md (under 95 % "
                     "delivered): defaults, best effort, 1 x 10 Hz: 25 % delivered"]


def test_demo_row_flags_a_shipped_model_that_answers_fewer_frames_in_every_repetition(tmp_path):
    (tmp_path / "bench").mkdir()
    shipped = summary.SHIPPED_RECORD.split("/")[-1].removesuffix(".train.json") + ".onnx"

    def row(model: str, rate: float, fps: list[float]) -> dict:
        stats = {"median": sorted(fps)[1], "min": min(fps), "max": max(fps), "values": fps}
        return {"model": model, "rate": rate, "fps": stats, "miou_percent": stats, "answered_percent": stats,
                "latency_p50_ms": stats, "latency_p90_ms": stats}

    (tmp_path / "bench/demo.json").write_text(json.dumps({
        "machine": {"date": "2026-01-02", "cpu": "c", "cores": 2}, "config": {"frames": 60, "repeats": 3},
        "results": [row(shipped, 1, [10.0, 10.1, 10.2]), row("old.onnx", 1, [10.1, 10.2, 10.3]),
                    row(shipped, 3, [20.0, 21.0, 22.0]), row("old.onnx", 3, [25.0, 26.0, 27.0])]}))
    line, short = summary.row(tmp_path, *next(r for r in summary.ROWS if r[3] is summary.demo))
    assert f"{shipped} at rate 3: mIoU 21.0 (20.0-22.0) %, 21.0 (20.0-22.0) fps" in line
    assert short == [f"on the demo at rate 3 the shipped {shipped} answers 21.0 fps, old.onnx 26.0 (bench/demo.md)"]


def test_every_row_says_not_measured_without_any_file(tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    text = summary.block(tmp_path)              # no bench files at all
    assert text.count("not measured (") == len(summary.ROWS)


def test_the_shipped_model_row_is_refused_when_model_and_record_do_not_name_each_other(tmp_path):
    """The record's onnx_sha256 is the model file's, and the model's metadata has the record's command and
    commit (bench/shipped.record_mismatch); a model re-exported without its record, or a record rewritten
    for another run, gives "refused" and a shortfall instead of the record's numbers."""
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / f"{SHIPPED_MODEL}.onnx", tmp_path / "models")
    record = json.loads((ROOT / summary.SHIPPED_RECORD).read_text())
    shipped = next(r for r in summary.ROWS if r[1] == summary.SHIPPED_RECORD)
    for change, expected in [({}, None), ({"onnx_sha256": "0" * 64}, "sha256 is not the record's onnx_sha256"),
                             ({"commit": "0123456789ab"}, f"metadata has commit {record['commit']!r}"),
                             ({"command": record["command"] + " seed=1"}, "metadata has command")]:
        (tmp_path / summary.SHIPPED_RECORD).write_text(json.dumps({**record, **change}))
        line, short = summary.row(tmp_path, *shipped)
        if expected is None:
            assert "refused" not in line and f"{100 * record['test_miou']:.2f} %" in line and short == []
        else:
            assert "| refused: " in line and expected in line and "test mIoU" not in line and len(short) == 1
