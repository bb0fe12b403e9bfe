"""TensorRT engine caching: the plain-Python key/sidecar logic here, the real build where TensorRT exists."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from bisegunet_ros.backends.tensorrt.engine_cache import (EngineCacheError, EngineKey, EngineMismatchError,
                                                          default_cache_dir, engine_path, prepare_cache_dir,
                                                          read_sidecar, read_verified, resolve_engine, sha256_of,
                                                          sidecar_path, timing_cache_path, write_with_sidecar)
from tiny_onnx import tiny_info, write_tiny_onnx


@pytest.fixture
def onnx(tmp_path):
    return write_tiny_onnx(tmp_path / "model.onnx")


@pytest.fixture
def key(onnx):
    return EngineKey("10.3.0", "Orin (nvgpu)", "8.7", "fp16", sha256_of(onnx), "1-2-4", "on")


@pytest.fixture
def cache(tmp_path):
    return prepare_cache_dir(tmp_path / "engines")


class Builds:
    """A build function that records its calls and returns a fake engine."""

    def __init__(self):
        self.calls = 0

    def __call__(self, src):
        self.calls += 1
        return b"engine %d" % self.calls


def test_names_say_version_gpu_precision_and_batch_range(cache, onnx, key):
    assert engine_path(cache, onnx, key) == cache / "model.fp16.b1-2-4.trt10.3.0.orin-nvgpu.engine"
    assert timing_cache_path(cache, onnx, key) == cache / "model.trt10.3.0.orin-nvgpu.timing-cache"
    assert engine_path(cache, onnx, replace(key, precision="int8")) != engine_path(cache, onnx, key)
    assert engine_path(cache, onnx, replace(key, batch_range="1-1-4")) != engine_path(cache, onnx, key)
    assert engine_path(cache, onnx, replace(key, tf32="off")).name.startswith("model.fp16.b1-2-4.notf32.")


def test_cache_dir_defaults_under_ros_home_and_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros"))
    assert prepare_cache_dir("") == tmp_path / "ros" / "bisegunet_engines"
    assert (tmp_path / "ros" / "bisegunet_engines").is_dir()
    monkeypatch.delenv("ROS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".ros" / "bisegunet_engines"


def test_unwritable_cache_dir_names_the_directory_and_the_setting(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(EngineCacheError, match=r"file/engines is not writable .*engine_cache_dir"):
        prepare_cache_dir(tmp_path / "file" / "engines")


def test_built_once_then_reused(cache, onnx, key):
    build = Builds()
    first = resolve_engine(cache, onnx, key, build)
    second = resolve_engine(cache, onnx, key, build)
    assert first == second and build.calls == 1
    record = json.loads(sidecar_path(first).read_text())
    assert record["tensorrt_version"] == "10.3.0" and record["onnx_sha256"] == key.onnx_sha256
    assert "build_date" in record and read_sidecar(first) == key
    assert record["bytes"] == first.stat().st_size and record["sha256"] == sha256_of(first)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "no sidecar hash"])
def test_a_damaged_engine_is_rebuilt_with_a_warning(cache, onnx, key, caplog, damage):
    """A build killed while writing (before atomic writes), or a bad disk: the sidecar's size and hash tell."""
    build = Builds()
    engine = resolve_engine(cache, onnx, key, build)
    if damage == "truncated":
        engine.write_bytes(engine.read_bytes()[:-3])
    elif damage == "corrupt":
        engine.write_bytes(b"x" * engine.stat().st_size)
    else:   # a sidecar written before sizes and hashes were recorded
        record = json.loads(sidecar_path(engine).read_text())
        del record["sha256"]
        sidecar_path(engine).write_text(json.dumps(record))
    assert resolve_engine(cache, onnx, key, build) == engine
    assert build.calls == 2 and engine.read_bytes() == b"engine 2"
    assert "building engine" in caplog.text and {"truncated": "bytes, its sidecar records",
                                                  "corrupt": "SHA-256", "no sidecar hash": "no size"}[damage] in caplog.text


def test_files_are_replaced_atomically_and_a_failed_build_leaves_the_old_engine(cache, onnx, key):
    engine = resolve_engine(cache, onnx, key, Builds())
    before = engine.stat().st_ino

    def killed(src):
        raise KeyboardInterrupt   # a build interrupted midway returns no engine

    with pytest.raises(KeyboardInterrupt):
        resolve_engine(cache, onnx, replace(key, tf32="off"), killed)
    write_with_sidecar(engine, b"new engine")
    assert engine.stat().st_ino != before       # a new file renamed over the old one, not rewritten in place
    assert read_verified(engine) == b"new engine"
    assert sorted(p.name for p in cache.iterdir()) == sorted([engine.name, sidecar_path(engine).name])


@pytest.mark.parametrize("change", ["tensorrt", "onnx", "sidecar"])
def test_stale_engine_is_rebuilt_never_run(cache, onnx, key, change):
    build = Builds()
    engine = resolve_engine(cache, onnx, key, build)
    if change == "tensorrt":  # the same file name, but a sidecar from another TensorRT
        sidecar = json.loads(sidecar_path(engine).read_text())
        sidecar["tensorrt_version"] = "8.6.1"
        sidecar_path(engine).write_text(json.dumps(sidecar))
    elif change == "onnx":
        key = replace(key, onnx_sha256=sha256_of(write_tiny_onnx(onnx, tiny_info(64, 64))))
    else:
        sidecar_path(engine).unlink()
    assert resolve_engine(cache, onnx, key, build) == engine
    assert build.calls == 2 and read_sidecar(engine) == key


def test_the_key_hashes_the_onnx_content_not_its_path(tmp_path, onnx):
    """What the node and bisegunet-build-engine key engines by (engine_build.current_key): an ONNX rewritten
    in place needs a new engine, the same bytes under another name reuse the engine."""
    key = EngineKey.of("10.3.0", "Orin (nvgpu)", "8.7", "fp16", onnx, (1, 2, 4), True)
    assert key.onnx_sha256 == hashlib.sha256(onnx.read_bytes()).hexdigest() and key.batch_range == "1-2-4"
    copy = tmp_path / "elsewhere" / "renamed.onnx"
    copy.parent.mkdir()
    copy.write_bytes(onnx.read_bytes())
    assert EngineKey.of("10.3.0", "Orin (nvgpu)", "8.7", "fp16", copy, (1, 2, 4), True) == key
    write_tiny_onnx(onnx, tiny_info(64, 64))                      # same path, another model
    assert EngineKey.of("10.3.0", "Orin (nvgpu)", "8.7", "fp16", onnx, (1, 2, 4), True) != key


def test_without_build_a_mismatch_names_both_files_and_the_difference(cache, onnx, key):
    engine = resolve_engine(cache, onnx, key, Builds())
    running = replace(key, gpu_name="NVIDIA H100", compute_capability="9.0")
    other = engine_path(cache, onnx, running)
    other.write_bytes(engine.read_bytes())
    sidecar_path(other).write_text(sidecar_path(engine).read_text())
    with pytest.raises(EngineMismatchError) as err:
        resolve_engine(cache, onnx, running, None)
    text = str(err.value)
    assert str(other) in text and str(onnx) in text
    assert "gpu_name: engine has 'Orin (nvgpu)'" in text and "bisegunet-build-engine" in text


@pytest.mark.parametrize("stride", [1, 4])
def test_tensorrt_engine_matches_onnxruntime(tmp_path, stride):
    """On the vehicle: TensorRT parses and runs the exported tail, the NCHW one and the NHWC one of a network
    that ends in a bilinear upsampling (stride 4), as ONNX Runtime does."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed here (it comes with JetPack)")
    pytest.importorskip("pycuda", reason="pycuda is not installed here (pip install pycuda on the vehicle)")
    from bisegunet_ros.backends import load_backend

    onnx = write_tiny_onnx(tmp_path / "model.onnx", stride=stride)
    trt_backend = load_backend(onnx, "tensorrt", "fp32", engine_cache_dir=tmp_path / "engines")
    ort_backend = load_backend(onnx, "onnxruntime")
    pixels = np.random.default_rng(0).integers(0, 256, (1, 32, 64, 3), dtype=np.uint8)
    trt_out, ort_out = trt_backend.infer(pixels), ort_backend.infer(pixels)
    assert (trt_out.labels != ort_out.labels).mean() < 1e-3   # argmax ties may differ in the last bit
    np.testing.assert_allclose(trt_out.confidence, ort_out.confidence, atol=1)
