"""TensorRT engine caching: the plain-Python key/sidecar logic here, the real build where TensorRT exists."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from bisegunet_ros.engine_build import calibration_batches
from bisegunet_ros.engine_cache import (EngineKey, EngineMismatchError, engine_path, read_sidecar, resolve_engine,
                                        sha256_of, sidecar_path, timing_cache_path)
from tiny_onnx import tiny_info, write_tiny_onnx


@pytest.fixture
def onnx(tmp_path):
    return write_tiny_onnx(tmp_path / "model.onnx")


@pytest.fixture
def key(onnx):
    return EngineKey("10.3.0", "Orin (nvgpu)", "8.7", "fp16", sha256_of(onnx))


class Builds:
    """A build function that records its calls and writes a fake engine."""

    def __init__(self):
        self.calls = 0

    def __call__(self, src, dst):
        self.calls += 1
        dst.write_bytes(b"engine %d" % self.calls)


def test_names_say_version_gpu_and_precision(onnx, key):
    assert engine_path(onnx, key).name == "model.fp16.trt10.3.0.orin-nvgpu.engine"
    assert timing_cache_path(onnx, key).name == "model.trt10.3.0.orin-nvgpu.timing-cache"
    assert engine_path(onnx, replace(key, precision="int8")) != engine_path(onnx, key)


def test_built_once_then_reused(onnx, key):
    build = Builds()
    first = resolve_engine(onnx, key, build)
    second = resolve_engine(onnx, key, build)
    assert first == second and build.calls == 1
    record = json.loads(sidecar_path(first).read_text())
    assert record["tensorrt_version"] == "10.3.0" and record["onnx_sha256"] == key.onnx_sha256
    assert "build_date" in record and read_sidecar(first) == key


@pytest.mark.parametrize("change", ["tensorrt", "onnx", "sidecar"])
def test_stale_engine_is_rebuilt_never_run(onnx, key, change):
    build = Builds()
    engine = resolve_engine(onnx, key, build)
    if change == "tensorrt":  # the same file name, but a sidecar from another TensorRT
        sidecar = json.loads(sidecar_path(engine).read_text())
        sidecar["tensorrt_version"] = "8.6.1"
        sidecar_path(engine).write_text(json.dumps(sidecar))
    elif change == "onnx":
        key = replace(key, onnx_sha256=sha256_of(write_tiny_onnx(onnx, tiny_info(64, 64))))
    else:
        sidecar_path(engine).unlink()
    assert resolve_engine(onnx, key, build) == engine
    assert build.calls == 2 and read_sidecar(engine) == key


def test_without_build_a_mismatch_names_both_files_and_the_difference(onnx, key):
    engine = resolve_engine(onnx, key, Builds())
    running = replace(key, gpu_name="NVIDIA H100", compute_capability="9.0")
    other = engine_path(onnx, running)
    other.write_bytes(engine.read_bytes())
    sidecar_path(other).write_text(sidecar_path(engine).read_text())
    with pytest.raises(EngineMismatchError) as err:
        resolve_engine(onnx, running, None)
    text = str(err.value)
    assert str(other) in text and str(onnx) in text
    assert "gpu_name: engine has 'Orin (nvgpu)'" in text and "bisegunet-build-engine" in text


def test_int8_without_calibration_images_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="--calib-images"):
        calibration_batches(tmp_path / "nothing", tiny_info())


def test_calibration_frames_are_normalised_at_network_size(tmp_path):
    import cv2

    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "a.png"), np.full((100, 200, 3), 128, np.uint8))
    (batch,) = calibration_batches(tmp_path / "frames", tiny_info(32, 64))
    assert batch.shape == (1, 3, 32, 64) and batch.dtype == np.float32
    assert batch[0, 0, 0, 0] == pytest.approx((128 / 255 - 0.485) / 0.229, abs=1e-4)


def test_tensorrt_engine_matches_onnxruntime(onnx):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed here (it comes with JetPack)")
    pytest.importorskip("pycuda", reason="pycuda is not installed here (it comes with JetPack)")
    from bisegunet_ros.backends import load_backend

    trt_backend = load_backend(onnx, "tensorrt", "fp32")
    ort_backend = load_backend(onnx, "onnxruntime")
    batch = np.random.default_rng(0).normal(size=(1, 3, 32, 64)).astype(np.float32)
    np.testing.assert_allclose(trt_backend.infer(batch), ort_backend.infer(batch), rtol=1e-3, atol=1e-3)
