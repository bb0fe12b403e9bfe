"""The real segmentation node with `backend: tensorrt`, in its own process, over the contract doubles.

tensorrt and pycuda cannot exist here; their contract test doubles (test/doubles) go on the
child's PYTHONPATH. The node loads the backend on its main thread and segments on its worker
thread, where (as with real CUDA) no context is current unless the backend makes one current.
A control file makes the double's execute_async_v3 return False, as TensorRT does on failure.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image

from bisegunet_ros.backends import load_backend
from bisegunet_ros.msg import SegmentationInfo
from bisegunet_ros.pipeline import SegmentationPipeline
from ros_client import RosClient
from ros_process import RosProcess
from tiny_onnx import tiny_info, write_tiny_onnx

pytestmark = pytest.mark.ros

DOUBLES = Path(__file__).parent / "doubles"
H, W = 48, 80


def with_doubles() -> str:
    """PYTHONPATH for a child process that imports the tensorrt and pycuda doubles."""
    return os.pathsep.join(p for p in (str(DOUBLES), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """(client, process, control file, execution log, ONNX Runtime pipeline for the expected labels)."""
    tmp = tmp_path_factory.mktemp("tensorrt_node")
    model = write_tiny_onnx(tmp / "tiny.onnx", tiny_info(32, 64))
    control, log = tmp / "control", tmp / "executions"
    control.write_text("")
    env = {"PYTHONPATH": with_doubles(), "TENSORRT_DOUBLE_CONTROL": str(control), "TENSORRT_DOUBLE_LOG": str(log)}
    cmd = [sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args"]
    for param in (f"model_path:={model}", "backend:=tensorrt", f"engine_cache_dir:={tmp / 'engines'}",
                  "stale_timeout:=3600.0"):
        cmd += ["-p", param]
    proc = RosProcess(cmd, env=env)
    proc.wait_for_topics(["/camera/segmentation/label"], timeout=60)
    client = RosClient("tensorrt_node_client")
    yield client, proc, control, log, SegmentationPipeline(load_backend(model, "onnxruntime"))
    client.close()
    proc.stop()


def frame(seed: int) -> Image:
    data = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Image(height=H, width=W, encoding="rgb8", step=W * 3, is_bigendian=0, data=data.tobytes())


def labels_of(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


def expected_labels(pipeline: SegmentationPipeline, msg: Image) -> np.ndarray:
    return pipeline.run([np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, 3)])[0].labels


def camera_status(diagnostics: list) -> DiagnosticStatus | None:
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.endswith("camera"):
                return status
    return None


def test_tensorrt_node_segments_on_its_worker_thread(node):
    client, proc, _, log, pipeline = node
    labels = client.subscribe("/camera/segmentation/label", Image)
    msg = frame(1)
    reply = client.request("/camera/image", msg, labels, timeout=60)
    assert reply is not None, f"no labels from the tensorrt node; its output:\n{proc.stop()}"
    np.testing.assert_array_equal(labels_of(reply), expected_labels(pipeline, msg))
    threads = {line.split(" ", 1)[1] for line in log.read_text().splitlines()}
    assert threads == {"segmentation"}        # the engine ran on the worker thread only


def test_tensorrt_node_engine_is_tuned_for_its_cameras(node):
    """max_batch 0 (the default): the profile takes and is tuned for one frame per camera (one camera here)."""
    control = node[2]
    engines = [p.name for p in (control.parent / "engines").glob("*.engine")]
    assert len(engines) == 1 and ".fp16.b1-1-1.trt" in engines[0], engines


def test_tensorrt_node_failing_execute_reports_error_publishes_nothing_and_recovers(node):
    client, proc, control, _, pipeline = node
    labels = client.subscribe("/camera/segmentation/label", Image, depth=100)
    info = client.subscribe("/camera/segmentation/info", SegmentationInfo, depth=100)
    diagnostics = client.subscribe("/diagnostics", DiagnosticArray)
    assert client.request("/camera/image", frame(2), labels, timeout=60) is not None

    control.write_text("execute\n")          # TensorRT's execute_async_v3 now returns False
    failing = frame(3)
    failing.header.stamp.sec = 2000
    for nanosec in range(20):
        failing.header.stamp.nanosec = nanosec
        client.publish("/camera/image", failing)
        client.spin_until(lambda: False, 0.1)

    def erroring() -> bool:
        status = camera_status(diagnostics)
        return status is not None and status.level == DiagnosticStatus.ERROR

    assert client.spin_until(erroring, 20), f"diagnostics never reported ERROR; node output:\n{proc.stop()}"
    status = camera_status(diagnostics)
    values = {kv.key: kv.value for kv in status.values}
    assert "execute_async_v3" in status.message and int(values["failed"]) >= 1
    assert not [m for m in labels if m.header.stamp.sec == 2000], "labels were published for failed frames"
    assert not [m for m in info if m.header.stamp.sec == 2000]
    assert proc.alive()

    control.write_text("")                   # TensorRT works again: the node serves again
    msg = frame(4)
    reply = client.request("/camera/image", msg, info, timeout=60)
    assert reply is not None and reply.frames_failed >= 1
    fresh = client.request("/camera/image", msg, labels, timeout=60)
    np.testing.assert_array_equal(labels_of(fresh), expected_labels(pipeline, msg))
    assert client.spin_until(lambda: camera_status(diagnostics).level == DiagnosticStatus.OK, 20)


def test_tensorrt_node_with_an_unwritable_engine_cache_stops_with_one_clear_error(tmp_path):
    model = write_tiny_onnx(tmp_path / "tiny.onnx", tiny_info(32, 64))
    (tmp_path / "a_file").write_text("")
    cmd = [sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", "-p", f"model_path:={model}",
           "-p", "backend:=tensorrt", "-p", f"engine_cache_dir:={tmp_path / 'a_file' / 'engines'}"]
    proc = RosProcess(cmd, env={"PYTHONPATH": with_doubles()})
    proc.proc.wait(60)
    output = proc.stop()
    assert proc.proc.returncode == 1 and "Traceback" not in output
    assert "a_file/engines is not writable" in output and "engine_cache_dir" in output
