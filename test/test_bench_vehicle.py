"""bench/vehicle.py, the benchmark a vehicle team runs and reports back: it refuses cleanly where TensorRT is
missing, checks its arguments, and its engine rows run against the tensorrt/pycuda contract doubles."""
from __future__ import annotations

import json

import pytest

from bench.vehicle import main
from tiny_onnx import tiny_info, write_tiny_onnx


@pytest.fixture
def model(tmp_path):
    return write_tiny_onnx(tmp_path / "model.onnx", tiny_info(32, 64))


def test_refuses_in_one_line_where_tensorrt_is_missing(model, tmp_path, capsys):
    if __import__("importlib").util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the refusal cannot be shown")
    assert main(["--model", str(model), "--out", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err.strip()
    assert "'tensorrt' is not installed" in message and "docs/orin.md" in message and "\n" not in message
    assert not (tmp_path / "out.json").exists()


def test_bad_arguments_are_one_clear_line(model, tmp_path, capsys):
    assert main(["--model", str(tmp_path / "absent.onnx"), "--out", str(tmp_path / "out")]) == 1
    assert "absent.onnx: model file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(model), "--cameras", "0", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--cameras must be positive" in capsys.readouterr().err


def test_engine_rows_per_precision_and_batch_on_the_doubles(tensorrt_doubles, model, tmp_path):
    out = tmp_path / "vehicle"
    assert main(["--model", str(model), "--cameras", "1", "2", "--repeats", "3", "--warmup", "1", "--no-node",
                 "--engine-cache-dir", str(tmp_path / "engines"), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert [(r["precision"], r["batch"], r["engine"]) for r in result["engine"]] == [
        ("fp16", 1, "built"), ("fp16", 2, "built"), ("fp32", 1, "built"), ("fp32", 2, "built")]
    assert all(r["infer_ms"]["count"] == 3 and r["gpu_memory_used_mib"] >= 0 for r in result["engine"])
    assert result["vehicle"]["tensorrt"] == "10.3.0" and result["node"] == []
    assert "| fp16 | 2 | built |" in out.with_suffix(".md").read_text()
    assert main(["--model", str(model), "--cameras", "1", "--precisions", "fp16", "--repeats", "2", "--warmup", "0",
                 "--no-node", "--engine-cache-dir", str(tmp_path / "engines"), "--out", str(out)]) == 0
    (row,) = json.loads(out.with_suffix(".json").read_text())["engine"]
    assert row["engine"] == "reused from the cache" and row["build_s"] is None
