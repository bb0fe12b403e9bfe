"""The segmentation node in its own process, over real DDS on localhost, against the pure pipeline."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image

from bisegunet_ros.backends import load_backend
from bisegunet_ros.classes import ClassTable
from bisegunet_ros.image_codec import decode_image
from bisegunet_ros.msg import ClassMasks, SegmentationInfo
from bisegunet_ros.pipeline import SegmentationPipeline
from ros_client import RosClient
from ros_process import RosProcess
from tiny_onnx import tiny_info, write_slow_onnx, write_tiny_onnx

pytestmark = pytest.mark.ros

H, W = 48, 80
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "yuv422": 2, "uyvy": 2,
            "yuyv": 2, "yuv422_yuy2": 2, "bayer_rggb8": 1, "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1}


def start_node(model, *params: str, env: dict | None = None) -> RosProcess:
    args = [f"model_path:={model}", *params]
    cmd = [sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args"]
    for a in args:
        cmd += ["-p", a]
    return RosProcess(cmd, env=env)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", tiny_info(32, 64))


@pytest.fixture(scope="module")
def pipeline(model):
    return SegmentationPipeline(load_backend(model, "onnxruntime"))


@pytest.fixture(scope="module")
def two_cameras(model):
    """One node for two cameras; yields (client, process)."""
    proc = start_node(model, "cameras:=[front, rear]", "stale_timeout:=0.5")
    proc.wait_for_topics(["/front/segmentation/label", "/rear/segmentation/label"])
    client = RosClient("node_test_client")
    client.front_labels = client.subscribe("/front/segmentation/label", Image)
    yield client, proc
    client.close()
    proc.stop()


def raw_image(encoding: str, seed: int = 0, pad: int = 0, frame_id: str = "cam") -> Image:
    rng = np.random.default_rng(seed)
    row = W * CHANNELS[encoding]
    data = rng.integers(0, 256, (H, row + pad), dtype=np.uint8)
    msg = Image(height=H, width=W, encoding=encoding, step=row + pad, is_bigendian=0, data=data.tobytes())
    msg.header.frame_id = frame_id
    return msg


def labels_of(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


@pytest.mark.parametrize("encoding", sorted(CHANNELS))
def test_every_encoding_gives_the_pipeline_labels_and_keeps_the_header(two_cameras, pipeline, encoding):
    client, proc = two_cameras
    msg = raw_image(encoding, seed=len(encoding), frame_id=f"front_{encoding}")
    reply = client.request("/front/image", msg, client.front_labels)
    assert reply is not None, f"no label for {encoding}; node output:\n{proc.stop()}"
    assert reply.header.frame_id == f"front_{encoding}"
    rgb = decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)
    expected = pipeline.run([rgb])[0].labels
    assert reply.encoding == "mono8" and (reply.height, reply.width) == (H, W)
    np.testing.assert_array_equal(labels_of(reply), expected)


def test_padded_rows_equal_unpadded(two_cameras):
    client, _ = two_cameras
    replies = client.subscribe("/rear/segmentation/label", Image)
    plain = client.request("/rear/image", raw_image("rgb8", seed=9), replies)
    padded_msg = raw_image("rgb8", seed=9)
    rows = np.frombuffer(padded_msg.data, np.uint8).reshape(H, W * 3)
    padded_msg.data = np.pad(rows, ((0, 0), (0, 16)), constant_values=77).tobytes()
    padded_msg.step = W * 3 + 16
    padded = client.request("/rear/image", padded_msg, replies)
    np.testing.assert_array_equal(labels_of(plain), labels_of(padded))


def test_all_outputs_and_info(two_cameras, pipeline):
    client, _ = two_cameras
    topics = {"color": Image, "overlay": Image, "confidence": Image, "class_masks": ClassMasks,
              "info": SegmentationInfo}
    got = {name: client.subscribe(f"/rear/segmentation/{name}", t) for name, t in topics.items()}
    msg = raw_image("rgb8", seed=3)
    info = client.request("/rear/image", msg, got["info"])
    assert info is not None
    stamp = (info.header.stamp.sec, info.header.stamp.nanosec)
    assert client.spin_until(lambda: all(any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in got[n])
                                         for n in topics), 10)
    pick = {n: next(m for m in got[n] if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp) for n in topics}
    rgb = np.frombuffer(msg.data, np.uint8).reshape(H, W, 3)
    result = pipeline.run([rgb], want_confidence=True)[0]
    colour = np.frombuffer(bytes(pick["color"].data), np.uint8).reshape(H, W, 3)
    np.testing.assert_array_equal(colour, pipeline.colorize(result.labels))
    assert pick["overlay"].encoding == "rgb8" and pick["confidence"].encoding == "mono8"
    np.testing.assert_array_equal(labels_of(pick["confidence"]), result.confidence)
    masks = pick["class_masks"]
    assert list(masks.class_names) == ["road", "person", "car"] and list(masks.class_ids) == [0, 11, 13]
    for cid, mask in zip(masks.class_ids, masks.masks):
        np.testing.assert_array_equal(labels_of(mask), np.where(result.labels == cid, 255, 0))   # by hand
    assert info.backend == "onnxruntime-cpu" and (info.input_width, info.network_width) == (W, 64)
    assert info.frames_processed >= 1 and info.total_ms > 0
    assert sum(info.class_fractions) == pytest.approx(1.0, abs=1e-3)


def test_outputs_without_subscribers_are_not_computed(two_cameras):
    client, _ = two_cameras
    diagnostics = client.subscribe("/diagnostics", DiagnosticArray)
    client.request("/front/image", raw_image("rgb8"), client.front_labels)

    def outputs_of(ns):
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name.endswith(ns):
                    return dict((kv.key, kv.value) for kv in status.values)["outputs"]
        return None

    assert client.spin_until(lambda: outputs_of("front") is not None, 5)
    assert outputs_of("front") == "label"


def _add_up(c: dict) -> bool:
    return c["received"] == sum(c[k] for k in ("processed", "dropped", "rejected", "failed", "skipped", "waiting"))


def test_counters_add_up_with_frames_nobody_subscribed_to(model):
    """Frames taken while no output had a subscriber count as skipped, so info's counters add up."""
    proc = start_node(model, "cameras:=[count]")
    proc.wait_for_topics(["/count/segmentation/info"])
    client = RosClient("count_test_client")
    try:
        diagnostics = client.subscribe("/diagnostics", DiagnosticArray)

        def status():
            for array in reversed(diagnostics):
                for s in array.status:
                    if s.name.endswith(": count"):
                        return s.message, {kv.key: kv.value for kv in s.values}
            return "", {}

        def skipped_some() -> bool:
            client.publish("/count/image", raw_image("rgb8"))
            return int(status()[1].get("skipped", 0)) >= 2

        assert client.spin_until(skipped_some, 30), proc.stop()
        message, values = status()
        assert "no output has a subscriber" in message and float(values["received_hz"]) > 0, values
        assert _add_up({k: int(v) for k, v in values.items() if k in ("received", "processed", "dropped",
                       "rejected", "failed", "skipped", "waiting")}), values
        info = client.request("/count/image", raw_image("rgb8"),
                              client.subscribe("/count/segmentation/info", SegmentationInfo))
    finally:
        client.close()
        proc.stop()
    assert info is not None and info.frames_skipped >= 2
    assert _add_up({k: getattr(info, f"frames_{k}") for k in ("received", "processed", "dropped", "rejected",
                                                               "failed", "skipped", "waiting")}), info


def test_stale_camera_warns_in_diagnostics(two_cameras):
    client, _ = two_cameras
    diagnostics = client.subscribe("/diagnostics", DiagnosticArray)
    time.sleep(1.0)
    from diagnostic_msgs.msg import DiagnosticStatus

    def level(ns):
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name.endswith(ns):
                    return status.level
        return None

    assert client.spin_until(lambda: level("rear") == DiagnosticStatus.WARN, 5)


@pytest.mark.parametrize("defect", ["unsupported encoding", "short data", "zero size", "step too small"])
def test_bad_frame_is_rejected_and_the_next_valid_one_answered(two_cameras, defect):
    client, proc = two_cameras
    info = client.subscribe("/front/segmentation/info", SegmentationInfo)
    before = client.request("/front/image", raw_image("rgb8", seed=1), info)
    bad = raw_image("rgb8", seed=2)
    if defect == "unsupported encoding":
        bad.encoding = "32FC1"
    elif defect == "short data":
        bad.data = bytes(bad.data)[: len(bad.data) // 2]
    elif defect == "zero size":
        bad.width = 0
    else:
        bad.step = W
    for _ in range(3):
        client.publish("/front/image", bad)
        client.spin_until(lambda: False, 0.2)
    after = client.request("/front/image", raw_image("rgb8", seed=3), info)
    assert proc.alive() and after is not None
    assert after.frames_rejected >= before.frames_rejected + 1


@pytest.fixture(scope="module")
def compressed_node(model):
    proc = start_node(model, "transport:=compressed")
    proc.wait_for_topics(["/camera/segmentation/label"])
    client = RosClient("compressed_client")
    yield client, proc
    client.close()
    proc.stop()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_input(compressed_node, pipeline, fmt):
    client, _ = compressed_node
    replies = client.subscribe("/camera/segmentation/label", Image)
    rgb = cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8), (5, 5), 0)
    ok, data = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format=f"rgb8; {fmt} compressed bgr8", data=data.tobytes())
    reply = client.request("/camera/image/compressed", msg, replies)
    assert reply is not None
    decoded = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(labels_of(reply), pipeline.run([decoded])[0].labels)


def test_corrupt_compressed_frame_is_rejected(compressed_node):
    client, proc = compressed_node
    info = client.subscribe("/camera/segmentation/info", SegmentationInfo)
    ok, data = cv2.imencode(".png", np.zeros((H, W, 3), np.uint8))
    before = client.request("/camera/image/compressed", CompressedImage(format="png", data=data.tobytes()), info)
    for _ in range(3):
        client.publish("/camera/image/compressed", CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg"))
        client.spin_until(lambda: False, 0.2)
    after = client.request("/camera/image/compressed", CompressedImage(format="png", data=data.tobytes()), info)
    assert proc.alive() and after is not None and after.frames_rejected >= before.frames_rejected + 1


def test_invalid_parameter_is_refused_at_start(model):
    proc = start_node(model, "output_resolution:=half")
    proc.proc.wait(30)
    output = proc.stop()
    assert proc.proc.returncode != 0
    assert "output_resolution" in output and "input, network" in output


def test_the_node_logs_which_dds_profile_is_in_effect(model):
    """Humble's Fast DDS 2 reads only FASTRTPS_DEFAULT_PROFILES_FILE: a profile named only the Kilted way is lost."""
    profile = Path(__file__).resolve().parents[1] / "config" / "fastdds_shm.xml"
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ
    proc = start_node(model, "cameras:=[dds_probe]",  # a topic of its own: no other test's node can answer for it
                      env={"ROS_DISTRO": "humble", "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)})
    proc.wait_for_topics(["/dds_probe/segmentation/label"])
    output = proc.stop()
    assert (f"DDS profile: none in effect: the Fast DDS of ROS humble reads FASTRTPS_DEFAULT_PROFILES_FILE, which "
            f"is unset; it ignores FASTDDS_DEFAULT_PROFILES_FILE={profile}") in output


def test_missing_model_is_one_clear_error(tmp_path):
    proc = start_node(tmp_path / "absent.onnx")
    proc.proc.wait(30)
    output = proc.stop()
    assert proc.proc.returncode == 1 and "absent.onnx: model file not found" in output


def _refused(*ros_args: str) -> str:
    """Start the node with `ros_args` and return its output, checking it refused in one line, exit code 1."""
    proc = RosProcess([sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", *ros_args])
    try:
        proc.proc.wait(30)
    finally:
        output = proc.stop()
    assert proc.proc.returncode == 1 and "Traceback" not in output, output
    return output


def test_an_empty_camera_list_is_one_clear_error(model):
    assert "parameter 'cameras' is empty" in _refused("-p", f"model_path:={model}", "-p", "cameras:=[]")


def test_a_misspelled_parameter_is_refused_with_the_accepted_names(model, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    model_path: {model}\n    overlay_alfa: 0.3\n")
    output = _refused("--params-file", str(params))
    assert "unknown parameter(s) overlay_alfa" in output and "overlay_alpha, mask_classes" in output


def test_a_missing_params_file_is_one_clear_error(tmp_path):
    assert f"{tmp_path}/absent.yaml" in _refused("--params-file", str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize("names, masks", [(("sky", "car", "tree"), ["car"]), (("sky", "tree"), [])])
def test_default_mask_classes_are_those_the_model_has(tmp_path, names, masks):
    """A model of its own classes starts without mask_classes set; empty lists ([]) are accepted as none."""
    classes = ClassTable(names, tuple((10 * i, 0, 0) for i in range(len(names))))
    model = write_tiny_onnx(tmp_path / "own.onnx", tiny_info(32, 64, classes))
    proc = start_node(model, "class_filter:=[]")
    client = RosClient("mask_default_client")
    try:
        got = client.subscribe("/camera/segmentation/class_masks", ClassMasks)
        reply = client.request("/camera/image", raw_image("rgb8"), got, timeout=30)
    finally:
        client.close()
    output = proc.stop()
    assert reply is not None, output
    assert list(reply.class_names) == masks
    assert ("the model has none of the default mask_classes" in output) == (not masks), output


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def test_overload_drops_frames_and_memory_stays_bounded(tmp_path):
    model = write_slow_onnx(tmp_path / "slow.onnx")
    proc = start_node(model, "threads:=1")
    proc.wait_for_topics(["/camera/segmentation/info"])
    client = RosClient("overload_client")
    try:
        info = client.subscribe("/camera/segmentation/info", SegmentationInfo, depth=1000)
        client.request("/camera/image", raw_image("rgb8"), info, timeout=30)   # warm-up: first runs are slower
        steady = client.request("/camera/image", raw_image("rgb8", seed=3), info, timeout=30)
        assert steady is not None and steady.inference_ms > 0
        period = steady.total_ms / 1e3 / 5          # 5x faster than the node can segment
        rss_start = _rss_kib(proc.proc.pid)
        msg = raw_image("rgb8", seed=4)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            client.publish("/camera/image", msg)
            client.spin_until(lambda: False, period)
        rss_end = _rss_kib(proc.proc.pid)
        client.spin_until(lambda: False, 1.0)
        last = max(info, key=lambda m: m.frames_received)
        assert proc.alive()
        assert last.frames_dropped > 0 and last.frames_processed < last.frames_received
        assert rss_end - rss_start < 50 * 1024, f"RSS grew {rss_end - rss_start} KiB under overload"
    finally:
        client.close()
        proc.stop()
