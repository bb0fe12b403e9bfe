"""README's Numbers table is what `python -m bench.summary` makes of the committed bench files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import summary

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
        "machine": {"date": "2026-01-02T03:04:05+00:00", "cpu": "Some CPU", "cores": 2},
        "preset": "small", "network": "512x1024", "frame": "512x1024", "frames": 20, "repeats": 3,
        "cpu_ms_outside_inference_per_frame": {"before": spread(40.0, 39.0, 42.5), "after": spread(6.5, 6.0, 7.25)},
        "stages": {"before": {"from_engine_bytes_per_frame": 39845888},
                   "after": {"from_engine_bytes_per_frame": 1048576}},
        "node": {}}))
    node = next(r for r in summary.ROWS if r[3] is summary.node_host)
    line, short = summary.row(tmp_path, *node)
    assert "`small` at a 512x1024 network" in line
    assert "before 40.0 (39.0-42.5) ms, after 6.50 (6.00-7.25) ms" in line
    assert "2026-01-02, Some CPU 2 cores, no GPU" in line
    assert len(short) == 1 and "over the goal of 5 ms" in short[0]


def test_training_row_gives_mean_sd_and_flags_gaps_over_the_papers(tmp_path):
    (tmp_path / "bench").mkdir()
    row = {"seeds": [0, 1, 2], "test_miou_min": 0, "test_miou_max": 0, "best_val_miou_mean": 0, "minutes_mean": 1}
    (tmp_path / "bench/training.json").write_text(json.dumps({
        "machine": {"date": "2026-01-02", "cpu": "c", "cores": 16, "gpu": "G", "training_devices": ["cuda"]},
        "rows": {"float": {**row, "test_miou_mean": 30.0, "test_miou_sd": 0.4, "gap_points": 0.0,
                           "gap_standard_error": 0.3},
                 "paper": {**row, "test_miou_mean": 24.0, "test_miou_sd": 0.5, "gap_points": 6.0,
                           "gap_standard_error": 0.37},
                 "irnet": {**row, "test_miou_mean": 28.0, "test_miou_sd": 0.3, "gap_points": 2.0,
                           "gap_standard_error": 0.29}}}))
    line, short = summary.row(tmp_path, *next(r for r in summary.ROWS if r[3] is summary.training))
    assert "float 30.0 ± 0.4; paper 24.0 ± 0.5 (gap 6.0 ± 0.4); irnet 28.0 ± 0.3 (gap 2.0 ± 0.3)" in line
    assert len(short) == 1 and short[0].startswith("`paper`")


def test_every_row_says_not_measured_without_any_file(tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    text = summary.block(tmp_path)              # no bench files at all
    assert text.count("not measured (") == len(summary.ROWS)


def test_the_shipped_model_row_is_refused_when_model_and_record_do_not_name_each_other(tmp_path):
    """The record's onnx_sha256 is the model file's, and the model's metadata has the record's command and
    commit (bench/shipped.record_mismatch); a model re-exported without its record, or a record rewritten
    for another run, gives "refused" and a shortfall instead of the record's numbers."""
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models/bisegunet_tiny.onnx", tmp_path / "models")
    record = json.loads((ROOT / summary.SHIPPED_RECORD).read_text())
    shipped = next(r for r in summary.ROWS if r[1] == summary.SHIPPED_RECORD)
    for change, expected in [({}, None), ({"onnx_sha256": "0" * 64}, "sha256 is not the record's onnx_sha256"),
                             ({"commit": "0123456789ab"}, "metadata has commit 'b34dffb45c6d'"),
                             ({"command": record["command"] + " seed=1"}, "metadata has command")]:
        (tmp_path / summary.SHIPPED_RECORD).write_text(json.dumps({**record, **change}))
        line, short = summary.row(tmp_path, *shipped)
        if expected is None:
            assert "refused" not in line and f"{100 * record['test_miou']:.2f} %" in line and short == []
        else:
            assert "| refused: " in line and expected in line and "test mIoU" not in line and len(short) == 1
