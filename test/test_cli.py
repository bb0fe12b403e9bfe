"""The command-line tools as a user runs them: bad input is one clear line, and the vehicle's tools need no torch.

Every tool is started through its console-script entry point (setup.py), from a directory that is
not the repository, so these tests follow the entry points wherever their modules live.
"""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import cv2
import numpy as np
import pytest

from bisegunet_ros.resources import SHIPPED_MODEL

SCRIPTS = {e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("bisegunet-")}

# Runs one console script's main(argv) in a fresh interpreter; with "--no-torch" first, importing torch
# fails (as where it is not installed) and the tool must not have imported it.
DRIVER = """
import sys
from importlib.metadata import entry_points

no_torch = sys.argv[1] == "--no-torch"
if no_torch:
    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed here")
    sys.meta_path.insert(0, BlockTorch())
    del sys.argv[1]
(entry,) = [e for e in entry_points(group="console_scripts") if e.name == sys.argv[1]]
code = entry.load()(sys.argv[2:])
assert not (no_torch and "torch" in sys.modules)
sys.exit(code)
"""


def run_cli(cwd: Path, script: str, *args: str, no_torch: bool = False, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-W", "ignore", "-c", DRIVER, *(["--no-torch"] if no_torch else []), script, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_every_tool_has_an_entry_point():
    assert set(SCRIPTS) == {"bisegunet-segment-node", "bisegunet-eval-bag", "bisegunet-build-engine",
                            "bisegunet-train", "bisegunet-export", "bisegunet-quantize", "bisegunet-make-bag", "bisegunet-make-dataset",
                            "bisegunet-profile"}


BAD_INPUT = [
    ("bisegunet-eval-bag", ["absent_bag", "--pred-topic", "/p"], "absent_bag: no such bag"),
    ("bisegunet-eval-bag", ["absent_bag", "--model", "absent_model"], "absent_model: model file not found"),
    ("bisegunet-eval-bag", ["absent_bag", "--model", "garbage.onnx"], "garbage.onnx"),
    ("bisegunet-make-bag", ["out", "--source", "folders", "--root", "absent_root"], "absent_root"),
    ("bisegunet-build-engine", ["--onnx", "absent.onnx"], "TensorRT"),
    ("bisegunet-train", ["--config", "absent_config"], "absent_config: training config file not found"),
    ("bisegunet-export", ["--checkpoint", "absent.pt", "--out", "m.onnx"], "absent.pt"),
    ("bisegunet-quantize", ["--onnx", "garbage.onnx", "--out", "m.onnx"], "garbage.onnx"),
    ("bisegunet-quantize", ["--onnx", "absent.onnx", "--out", "m.onnx"], "absent.onnx"),
    ("bisegunet-make-dataset", ["out", "--train", "0"], "--train: expected an integer >= 1, got '0'"),
    ("bisegunet-profile", ["--model", "absent_preset"], "absent_preset: model preset file not found"),
    ("bisegunet-segment-node", ["--ros-args", "-p", "model_path:=absent.onnx"], "absent.onnx"),
    # values out of type or range: refused before any work (issue 25)
    ("bisegunet-train", ["--config", "ci", "data.height=abc"], "data.height: 'abc' is not an integer"),
    ("bisegunet-eval-bag", ["bag", "--model", "m.onnx", "--max-frames", "-1"], "--max-frames: expected an integer"),
    ("bisegunet-make-dataset", ["out", "--test", "-1"], "--test: expected an integer >= 0"),
    ("bisegunet-profile", ["--size", "512", "0"], "--size: expected an integer >= 8"),
    ("bisegunet-quantize", ["--onnx", "m.onnx", "--out", "q.onnx", "--frames", "0"], "--frames: expected an integer"),
]


@pytest.mark.parametrize("script, args, named", BAD_INPUT, ids=[f"{s} {a[-1]}" for s, a, _ in BAD_INPUT])
def test_bad_input_is_one_clear_line_and_a_failure_exit(tmp_path, script, args, named):
    (tmp_path / "garbage.onnx").write_text("not a model\n")
    result = run_cli(tmp_path, script, *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and named in errors[0], output


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_vehicle_tools_run_without_torch(tmp_path):
    """make-bag (synthetic scenes, image/mask folders, Cityscapes layout), eval-bag and build-engine."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    _write_png(tmp_path / "folders/images/a.png", rgb)
    _write_png(tmp_path / "folders/masks/a.png", rng.integers(0, 19, (32, 64), dtype=np.uint8))
    _write_png(tmp_path / "cityscapes/leftImg8bit/val/c/c_0_0_leftImg8bit.png", rgb)
    _write_png(tmp_path / "cityscapes/gtFine/val/c/c_0_0_gtFine_labelIds.png", np.full((32, 64), 7, np.uint8))

    for source in ("folders", "cityscapes"):
        result = run_cli(tmp_path, "bisegunet-make-bag", f"{source}_bag", "--source", source, "--root", source,
                         no_torch=True)
        assert result.returncode == 0, result.stderr
        assert "wrote 1 frames" in result.stderr
    result = run_cli(tmp_path, "bisegunet-make-bag", "bag", "--frames", "2", "--height", "64", "--width", "128",
                     no_torch=True)
    assert result.returncode == 0, result.stderr
    result = run_cli(tmp_path, "bisegunet-eval-bag", "bag", "--model", SHIPPED_MODEL, "--backend", "onnxruntime",
                     "--out", "report", no_torch=True)
    assert result.returncode == 0, result.stderr
    assert "frames evaluated: 2" in result.stdout and (tmp_path / "report/report.json").is_file()
    # no TensorRT here: the tool says so in one line, after importing everything it needs, torch excepted
    result = run_cli(tmp_path, "bisegunet-build-engine", "--onnx", f"{SHIPPED_MODEL}.onnx", no_torch=True)
    assert result.returncode == 2 and "cannot build a TensorRT engine here" in result.stderr, result.stderr
