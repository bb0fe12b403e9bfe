"""The TensorRT backend against the contract test doubles of tensorrt and pycuda (test/doubles).

The doubles follow the documented semantics the backend depends on (a CUDA context is current
only on the thread that pushed it; TensorRT reports failures by return value; engines expose the
named-tensor API and their optimization profile), and the double engine really computes the
network (with ONNX Runtime), so outputs are compared with ONNX Runtime's. The same test with the
real libraries is test_engine_cache.py::test_tensorrt_engine_matches_onnxruntime (vehicle only).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from bisegunet_ros.backends import load_backend
from bisegunet_ros.model_info import ModelError, PREFIX
from tiny_onnx import tiny_info, write_tiny_onnx

H, W = 32, 64


@pytest.fixture
def onnx_model(tmp_path):
    return write_tiny_onnx(tmp_path / "model.onnx", tiny_info(H, W), logits=True)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "engines"


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


def backend(tensorrt_doubles, model: Path, cache: Path, precision: str = "fp16", max_batch: int = 4,
            cameras: int = 1, tf32: bool = True):
    from bisegunet_ros.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(model, precision, cameras=cameras, max_batch=max_batch, tf32=tf32, engine_cache_dir=cache)


def with_qdq(src: Path, dst: Path, zero_point: np.ndarray, target: str = "tensorrt") -> Path:
    """`src` with a Q/DQ pair in front of its first convolution, recorded as precision int8 for `target`."""
    model = onnx.load(str(src))
    index, conv = next((i, n) for i, n in enumerate(model.graph.node) if n.op_type == "Conv")
    model.graph.initializer.extend([numpy_helper.from_array(np.array(0.05, np.float32), "qdq_scale"),
                                   numpy_helper.from_array(zero_point, "qdq_zero")])
    pair = [helper.make_node("QuantizeLinear", [conv.input[0], "qdq_scale", "qdq_zero"], ["qdq_q"]),
            helper.make_node("DequantizeLinear", ["qdq_q", "qdq_scale", "qdq_zero"], ["qdq_dq"])]
    conv.input[0] = "qdq_dq"
    for node in reversed(pair):
        model.graph.node.insert(index, node)
    props = {p.key: p.value for p in model.metadata_props}
    props[PREFIX + "precision"] = '"int8"'
    props[PREFIX + "int8_target"] = f'"{target}"'
    helper.set_model_props(model, props)
    onnx.save(model, str(dst))
    return dst


def test_tensorrt_infer_on_another_thread_equals_onnxruntime(tensorrt_doubles, onnx_model, cache):
    trt_backend = backend(tensorrt_doubles, onnx_model, cache)
    expected = load_backend(onnx_model, "onnxruntime").infer(pixels(3))
    got = {}
    worker = threading.Thread(target=lambda: got.update(out=trt_backend.infer(pixels(3))), name="segmentation")
    worker.start()
    worker.join(60)
    out = got["out"]
    np.testing.assert_array_equal(out.labels, expected.labels)
    np.testing.assert_array_equal(out.confidence, expected.confidence)
    np.testing.assert_allclose(out.logits, expected.logits, rtol=1e-5, atol=1e-5)
    assert out.labels.dtype == np.uint8 and out.labels.shape == (3, H, W)
    labels_only = trt_backend.infer(pixels(3), confidence=False)
    assert labels_only.confidence is None
    np.testing.assert_array_equal(labels_only.labels, expected.labels)


def test_tensorrt_makes_its_context_current_around_every_cuda_call_of_infer(tensorrt_doubles, onnx_model, cache,
                                                                            monkeypatch):
    """A copy on the backend's own stream would go through without a current context (the real driver's
    answer, which the double gives: bench/gpu_cuda_plumbing.json), so the double's errors alone cannot show
    that `infer` pushes the context: record which context is current at each call instead."""
    import pycuda.driver as cuda
    import simulated_gpu
    import tensorrt

    trt_backend = backend(tensorrt_doubles, onnx_model, cache)
    current = []

    def recording(function):
        def call(*args, **kwargs):
            current.append((function.__name__, simulated_gpu.current()))
            return function(*args, **kwargs)
        return call

    for name in ("memcpy_htod_async", "memcpy_dtoh_async"):
        monkeypatch.setattr(cuda, name, recording(getattr(cuda, name)))
    monkeypatch.setattr(tensorrt.IExecutionContext, "execute_async_v3",
                        recording(tensorrt.IExecutionContext.execute_async_v3))
    worker = threading.Thread(target=lambda: trt_backend.infer(pixels(2)), name="segmentation")
    worker.start()
    worker.join(60)
    calls = {name for name, _ in current}
    assert calls == {"memcpy_htod_async", "memcpy_dtoh_async", "execute_async_v3"}
    assert all(context is not None and context.primary for _, context in current), current
    trt_backend.close()


def test_tensorrt_leaves_no_context_current_and_a_call_without_one_is_a_clear_error(tensorrt_doubles, onnx_model,
                                                                                     cache):
    import pycuda.driver as cuda
    import simulated_gpu

    from bisegunet_ros.backends.tensorrt.cuda_context import CudaError, driver_errors

    trt_backend = backend(tensorrt_doubles, onnx_model, cache)
    trt_backend.infer(pixels(1))
    assert simulated_gpu.current() is None          # pushed for the calls, popped after
    with pytest.raises(CudaError, match="no CUDA context is current on thread 'MainThread'"):
        with driver_errors("copying a frame"):
            cuda.mem_alloc(16)
    trt_backend.close()
    with pytest.raises(CudaError, match="released"):
        trt_backend.infer(pixels(1))


def test_tensorrt_copies_only_the_frames_of_the_batch(tensorrt_doubles, onnx_model, cache, monkeypatch):
    import pycuda.driver as cuda

    trt_backend = backend(tensorrt_doubles, onnx_model, cache)
    copied = []
    htod, dtoh = cuda.memcpy_htod_async, cuda.memcpy_dtoh_async

    def recorded_htod(dest, src, stream=None):
        copied.append(("to device", src.nbytes))
        htod(dest, src, stream)

    def recorded_dtoh(dest, src, stream=None):
        copied.append(("to host", dest.nbytes))
        dtoh(dest, src, stream)

    monkeypatch.setattr(cuda, "memcpy_htod_async", recorded_htod)
    monkeypatch.setattr(cuda, "memcpy_dtoh_async", recorded_dtoh)
    trt_backend.infer(pixels(1))
    assert trt_backend.max_batch == 4
    frame = H * W     # labels and confidence: 1 byte per pixel; logits: 19 classes x float32
    assert sorted(copied) == sorted([("to device", frame * 3), ("to host", frame), ("to host", frame),
                                     ("to host", frame * 19 * 4)])


def test_tensorrt_max_batch_is_the_engine_profiles_and_keys_the_engine(tensorrt_doubles, onnx_model, cache, tmp_path):
    two = backend(tensorrt_doubles, onnx_model, cache, max_batch=2)
    assert two.max_batch == 2
    with pytest.raises(ValueError, match="takes 1 to 2"):
        two.infer(pixels(3))
    four = backend(tensorrt_doubles, onnx_model, cache, max_batch=4)
    assert four.max_batch == 4
    engines = sorted(p.name for p in cache.glob("*.engine"))
    assert [e.split(".")[2] for e in engines] == ["b1-1-2", "b1-1-4"]
    fixed = write_tiny_onnx(tmp_path / "fixed.onnx", tiny_info(H, W), dynamic_batch=False)
    assert backend(tensorrt_doubles, fixed, cache, max_batch=4).max_batch == 1


@pytest.mark.parametrize("call", ["set_input_shape", "execute"])
def test_tensorrt_refused_call_raises_and_never_returns_the_previous_outputs(tensorrt_doubles, onnx_model, cache,
                                                                             tmp_path, monkeypatch, call):
    from bisegunet_ros.backends.tensorrt.backend import TensorRTError

    trt_backend = backend(tensorrt_doubles, onnx_model, cache)
    trt_backend.infer(pixels(2, seed=1))
    control = tmp_path / "control"
    control.write_text(call + "\n")
    monkeypatch.setenv("TENSORRT_DOUBLE_CONTROL", str(control))
    with pytest.raises(TensorRTError, match=call):
        trt_backend.infer(pixels(2, seed=2))
    control.write_text("")
    expected = load_backend(onnx_model, "onnxruntime").infer(pixels(2, seed=3))
    np.testing.assert_array_equal(trt_backend.infer(pixels(2, seed=3)).labels, expected.labels)


def test_tensorrt_profile_is_tuned_for_the_cameras_and_max_batch_defaults_to_them(tensorrt_doubles, onnx_model, cache):
    three = backend(tensorrt_doubles, onnx_model, cache, cameras=3, max_batch=0)
    assert three.max_batch == 3
    assert [shape[0] for shape in three.engine.get_tensor_profile_shape("pixels", 0)] == [1, 3, 3]
    wider = backend(tensorrt_doubles, onnx_model, cache, cameras=2, max_batch=4)
    assert [shape[0] for shape in wider.engine.get_tensor_profile_shape("pixels", 0)] == [1, 2, 4]
    fewer = backend(tensorrt_doubles, onnx_model, cache, cameras=3, max_batch=2)   # the node splits its calls
    assert [shape[0] for shape in fewer.engine.get_tensor_profile_shape("pixels", 0)] == [1, 2, 2]
    with pytest.raises(ValueError, match=r"max_batch \(-1, 0 = cameras\) must be at least 1"):
        backend(tensorrt_doubles, onnx_model, cache, cameras=3, max_batch=-1)


def test_tensorrt_tf32_is_on_by_default_and_keys_the_engine(tensorrt_doubles, onnx_model, cache):
    import json

    def flags(engine: Path) -> list[str]:
        return json.loads(engine.read_bytes().split(b"\n")[1])["flags"]

    backend(tensorrt_doubles, onnx_model, cache, precision="fp32").close()
    backend(tensorrt_doubles, onnx_model, cache, precision="fp32", tf32=False).close()
    (default,), (off,) = cache.glob("*.fp32.b1-1-4.trt*.engine"), cache.glob("*.notf32.*.engine")
    assert flags(default) == ["TF32"] and flags(off) == []
    assert json.loads((cache / (off.name + ".json")).read_text())["tf32"] == "off"


def _damage_engine(cache: Path, content: bytes, keep_sidecar_valid: bool) -> Path:
    """Overwrite the one cached engine; with `keep_sidecar_valid`, so that only deserialization can tell."""
    import hashlib
    import json

    (engine,) = cache.glob("*.engine")
    engine.write_bytes(content)
    if keep_sidecar_valid:
        sidecar = cache / (engine.name + ".json")
        record = json.loads(sidecar.read_text())
        record.update(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
        sidecar.write_text(json.dumps(record))
    return engine


@pytest.mark.parametrize("keep_sidecar_valid", [True, False])
def test_tensorrt_damaged_engine_is_rebuilt_with_a_warning_never_a_crash_loop(tensorrt_doubles, onnx_model, cache,
                                                                              caplog, keep_sidecar_valid):
    backend(tensorrt_doubles, onnx_model, cache).close()
    engine = _damage_engine(cache, b"not an engine", keep_sidecar_valid)
    expected = load_backend(onnx_model, "onnxruntime").infer(pixels(2))
    restarted = backend(tensorrt_doubles, onnx_model, cache)
    np.testing.assert_array_equal(restarted.infer(pixels(2)).labels, expected.labels)
    assert engine.read_bytes() != b"not an engine"
    assert ("could not deserialize it; rebuilding" if keep_sidecar_valid else "its sidecar records") in caplog.text


def test_tensorrt_engine_truncated_behind_a_valid_sidecar_is_rebuilt(tensorrt_doubles, onnx_model, cache, caplog):
    backend(tensorrt_doubles, onnx_model, cache).close()
    (engine,) = cache.glob("*.engine")
    _damage_engine(cache, engine.read_bytes()[:-100], keep_sidecar_valid=True)
    backend(tensorrt_doubles, onnx_model, cache).infer(pixels(1))
    assert "could not deserialize it; rebuilding" in caplog.text


@pytest.mark.parametrize("damage", ["garbage behind a valid sidecar", "truncated"])
def test_tensorrt_damaged_timing_cache_costs_build_time_not_the_build(tensorrt_doubles, onnx_model, cache, caplog,
                                                                      damage):
    import hashlib
    import json

    backend(tensorrt_doubles, onnx_model, cache).close()
    (timing,) = cache.glob("*.timing-cache")
    good = timing.read_bytes()
    if damage == "truncated":
        timing.write_bytes(good[:-5])
    else:
        timing.write_bytes(b"garbage")
        record = json.loads((cache / (timing.name + ".json")).read_text())
        record.update(bytes=7, sha256=hashlib.sha256(b"garbage").hexdigest())
        (cache / (timing.name + ".json")).write_text(json.dumps(record))
    backend(tensorrt_doubles, onnx_model, cache, precision="fp32").infer(pixels(1))
    assert ("refused by TensorRT" if damage.startswith("garbage") else "bytes, its sidecar records") in caplog.text
    assert timing.read_bytes().startswith(b"TRTTIMING")   # rewritten whole after the build


def test_tensorrt_failing_create_timing_cache_is_a_clear_error(tensorrt_doubles, onnx_model, cache, tmp_path,
                                                               monkeypatch):
    from bisegunet_ros.backends.tensorrt.engine_build import TensorRTError

    control = tmp_path / "control"
    control.write_text("create_timing_cache\n")
    monkeypatch.setenv("TENSORRT_DOUBLE_CONTROL", str(control))
    with pytest.raises(TensorRTError, match="create_timing_cache"):
        backend(tensorrt_doubles, onnx_model, cache)
    assert not list(cache.glob("*.engine"))


def test_tensorrt_close_frees_stream_host_and_device_buffers(tensorrt_doubles, onnx_model, cache):
    """A node restarted in-process (tests, component reload) must not leak pinned memory or streams."""
    import simulated_gpu as gpu

    for _ in range(2):
        trt_backend = backend(tensorrt_doubles, onnx_model, cache)
        trt_backend.infer(pixels(2))
        assert gpu.memory.pinned and gpu.streams
        trt_backend.close()
    assert gpu.leaks == []
    assert not gpu.memory.pinned and not gpu.memory.blocks and not gpu.streams


def test_tensorrt_before_10_is_refused_and_auto_falls_back(tensorrt_doubles, onnx_model, cache, monkeypatch):
    monkeypatch.setenv("TENSORRT_DOUBLE_VERSION", "8.6.2")
    with pytest.raises(RuntimeError, match=r"TensorRT 8\.6\.2 is too old.*JetPack 6\.1"):
        load_backend(onnx_model, "tensorrt", engine_cache_dir=cache)
    assert load_backend(onnx_model, "auto", engine_cache_dir=cache).name == "onnxruntime-cpu"


def test_tensorrt_int8_engine_is_built_from_the_symmetric_qdq_model(tensorrt_doubles, onnx_model, cache, tmp_path):
    qdq = with_qdq(onnx_model, tmp_path / "model.int8.onnx", np.array(0, np.int8))
    trt_backend = backend(tensorrt_doubles, qdq, cache, precision="int8")
    expected = load_backend(qdq, "onnxruntime").infer(pixels(2))
    np.testing.assert_array_equal(trt_backend.infer(pixels(2)).labels, expected.labels)
    with pytest.raises(ModelError, match="bisegunet-quantize"):
        backend(tensorrt_doubles, onnx_model, cache, precision="int8")
    with pytest.raises(ModelError, match="build it with precision int8"):
        backend(tensorrt_doubles, qdq, cache, precision="fp16")
    cpu = with_qdq(onnx_model, tmp_path / "model.int8-cpu.onnx", np.array(128, np.uint8), target="cpu")
    with pytest.raises(ModelError, match=r"model.int8-cpu.onnx: this INT8 model is the one for ONNX Runtime on a CPU"):
        backend(tensorrt_doubles, cpu, cache, precision="int8")


def test_tensorrt_parser_errors_are_reported(tensorrt_doubles, onnx_model, cache, tmp_path):
    asymmetric = with_qdq(onnx_model, tmp_path / "asym.int8.onnx", np.array(128, np.uint8))
    with pytest.raises(ModelError, match="TensorRT could not parse it: .*symmetric"):
        backend(tensorrt_doubles, asymmetric, cache, precision="int8")


def test_tensorrt_engines_go_to_ros_home_never_next_to_the_model(tensorrt_doubles, onnx_model, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    backend(tensorrt_doubles, onnx_model, None)
    assert len(list((tmp_path / "ros_home" / "bisegunet_engines").glob("*.engine"))) == 1
    assert sorted(p.name for p in onnx_model.parent.iterdir()) == ["model.onnx", "ros_home"]


def test_tensorrt_unwritable_cache_dir_is_a_clear_error(tensorrt_doubles, onnx_model, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(RuntimeError, match=r"engine cache directory .*a_file/engines is not writable.*engine_cache_dir"):
        backend(tensorrt_doubles, onnx_model, blocker / "engines")


def test_build_engine_cli_writes_into_the_cache_dir_and_fails_in_one_line(tensorrt_doubles, onnx_model, tmp_path,
                                                                         capsys, caplog):
    from bisegunet_ros.backends.tensorrt.engine_build import main

    assert main(["--onnx", str(onnx_model), "--engine-cache-dir", str(tmp_path / "cli"), "--max-batch", "2"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(str(tmp_path / "cli")) and ".fp16.b1-1-2." in printed and Path(printed).is_file()
    assert main(["--onnx", str(onnx_model), "--precision", "int8", "--engine-cache-dir", str(tmp_path / "cli")]) == 1
    assert "bisegunet-quantize" in caplog.text


def test_gpu_cuda_plumbing_bench_passes_on_the_pycuda_double(tensorrt_doubles, tmp_path):
    """bench/gpu_cuda_plumbing.py is run on a real GPU by hand; here it must run, pass, and answer as the GPU did."""
    import json
    import os
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "bench" / "gpu_cuda_plumbing.py"
    env = {**os.environ, "PYTHONPATH": str(tensorrt_doubles)}
    done = subprocess.run([sys.executable, str(script), "--height", "16", "--width", "32", "--repeats", "3"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["passed"]
    # on a thread with no current context the double must fail where the real driver failed (H200, CUDA 13.0 driver:
    # bench/gpu_cuda_plumbing.json) and succeed where it succeeded: a copy on a stream carries the stream's context
    measured = json.loads((script.parent / "gpu_cuda_plumbing.json").read_text())["no_context_calls"]

    def outcome(calls: dict) -> dict:
        return {call: result if isinstance(result, bool) else result == "ok" for call, result in calls.items()}

    assert outcome(summary["no_context_calls"]) == outcome(measured)
    assert outcome(measured) == {"mem_alloc": False, "memcpy_htod_async_default_stream": False,
                                 "memcpy_htod_async_own_stream": True, "own_stream_copy_arrived": True}


def test_pycuda_double_autoinit_context_is_current_only_on_the_importing_thread(tensorrt_doubles):
    """The double reproduces issue 13's defect: pycuda.autoinit on one thread, a copy on another."""
    import pycuda.autoinit  # noqa: F401
    import pycuda.driver as cuda

    buffer = cuda.pagelocked_empty((4,), np.uint8)
    device = cuda.mem_alloc(buffer.nbytes)
    cuda.memcpy_htod_async(device, buffer)               # fine on the thread that imported autoinit
    errors = []

    def copy() -> None:
        try:
            cuda.memcpy_htod_async(device, buffer)
        except cuda.LogicError as exc:
            errors.append(exc)

    worker = threading.Thread(target=copy)
    worker.start()
    worker.join(10)
    assert len(errors) == 1 and "invalid device context" in str(errors[0])

