"""bisegunet-eval-bag on real bags written with rosbags: offline, predictions-in-bag and live modes."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from bisegunet_ros.backends import load_backend
from bisegunet_ros.bag_io import TYPESTORE, BagError, BagWriter, read_messages, topics_of, write_labelled_frames
from bisegunet_ros.evaluate_bag import decode_frame
from bisegunet_ros.evaluate_bag import main as eval_bag
from bisegunet_ros.image_codec import encode_image
from bisegunet_ros.metrics import ConfusionMatrix
from bisegunet_ros.pipeline import SegmentationPipeline
from tiny_onnx import tiny_info, write_tiny_onnx

H, W, N = 32, 64, 6


def frames(n=N, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        labels = rng.integers(0, 19, (H, W), dtype=np.uint8)
        labels[:2] = 255
        yield rgb, labels


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", tiny_info(H, W))


def report(out):
    return json.loads((out / "report.json").read_text())


def test_predictions_equal_to_labels_give_miou_1(tmp_path):
    bag = tmp_path / "bag"
    image_type = TYPESTORE.types["sensor_msgs/msg/Image"]
    with BagWriter(bag) as writer:
        for i, (_, labels) in enumerate(frames()):
            # a prediction equal to the ground truth wherever the ground truth is not ignored
            for topic, image in (("/camera/labels", labels), ("/camera/segmentation/label", labels % 255)):
                step, data = encode_image(image, "mono8")
                msg = image_type(header=TYPESTORE.types["std_msgs/msg/Header"](
                    stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=i, nanosec=0), frame_id="camera"),
                    height=H, width=W, encoding="mono8", is_bigendian=0, step=step,
                    data=np.frombuffer(data, np.uint8))
                writer.write(topic, "sensor_msgs/msg/Image", i * 10**8, msg)
    out = tmp_path / "report"
    assert eval_bag([str(bag), "--pred-topic", "/camera/segmentation/label", "--image-topic", "",
                     "--out", str(out)]) == 0
    result = report(out)
    assert result["metrics"]["miou"] == 1.0 and result["metrics"]["pixel_accuracy"] == 1.0
    assert result["frames"]["evaluated"] == N and result["mode"] == "predictions"


@pytest.mark.parametrize("storage,image_format", [("mcap", "rgb8"), ("sqlite3", "bgr8"), ("mcap", "jpeg")])
def test_offline_equals_the_pipeline_on_every_frame(tmp_path, model, storage, image_format):
    bag = tmp_path / "bag"
    assert write_labelled_frames(bag, frames(), storage=storage, image_format=image_format) == N
    image_topic = "/camera/image_raw" + ("/compressed" if image_format == "jpeg" else "")
    out = tmp_path / "report"
    assert eval_bag([str(bag), "--model", str(model), "--backend", "onnxruntime", "--image-topic", image_topic,
                     "--out", str(out), "--out-bag", str(tmp_path / "pred")]) == 0
    pipeline = SegmentationPipeline(load_backend(model, "onnxruntime"))
    expected = ConfusionMatrix(19)
    decoded = [decode_frame(m.decode()) for m in read_messages(bag, [image_topic])]
    for rgb, (_, labels) in zip(decoded, frames()):
        expected.update(labels, pipeline.run([rgb])[0].labels)
    result = report(out)
    assert result["metrics"]["miou"] == pytest.approx(expected.summary()["miou"])
    assert result["frames"]["evaluated"] == N
    for plot in ("per_class_iou.png", "confusion_matrix.png", "latency.png", "samples.png", "report.md"):
        assert (out / plot).stat().st_size > 1000
    assert set(topics_of(tmp_path / "pred")) == {f"/camera/segmentation/{n}" for n in ("label", "color", "overlay")}


def test_missing_topic_lists_what_the_bag_holds(tmp_path, model, caplog):
    write_labelled_frames(tmp_path / "bag", frames(2))
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--image-topic", "/front/image",
                     "--out", str(tmp_path / "r")]) == 1
    assert "no topic /front/image" in caplog.text and "/camera/labels [sensor_msgs/msg/Image]" in caplog.text


def test_unreadable_bag_is_a_clear_error(tmp_path, model, caplog):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "metadata.yaml").write_text("not: [valid")
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--out", str(tmp_path / "r")]) == 1
    assert "not a readable ROS 2 bag" in caplog.text
    with pytest.raises(BagError, match="no such bag"):
        topics_of(tmp_path / "absent")


def test_frames_without_ground_truth_are_counted_not_fatal(tmp_path, model):
    bag = tmp_path / "bag"
    write_labelled_frames(bag, frames(4))
    # a second bag with one extra image (no label) at a new stamp
    extra = tmp_path / "extra"
    with BagWriter(extra) as writer:
        for message in read_messages(bag, ["/camera/image_raw", "/camera/labels"]):
            writer.write(message.topic, message.msgtype, message.timestamp, message.decode())
        msg = next(iter(read_messages(bag, ["/camera/image_raw"]))).decode()
        msg.header.stamp.sec += 100
        writer.write("/camera/image_raw", "sensor_msgs/msg/Image", 10**18, msg)
    assert len(list(read_messages(extra, ["/camera/image_raw"]))) == 5          # the case is really there
    assert eval_bag([str(extra), "--model", str(model), "--out", str(tmp_path / "r")]) == 0
    result = report(tmp_path / "r")
    assert result["frames"]["evaluated"] == 4 and result["frames"]["without_ground_truth"] == 1


def test_truncated_bag_is_read_as_far_as_valid(tmp_path, model, caplog):
    bag = tmp_path / "bag"
    write_labelled_frames(bag, frames(20))
    (storage,) = bag.glob("*.mcap")
    os.truncate(storage, storage.stat().st_size // 2)
    with caplog.at_level(logging.WARNING):
        assert eval_bag([str(bag), "--model", str(model), "--out", str(tmp_path / "r")]) == 0
    evaluated = report(tmp_path / "r")["frames"]["evaluated"]
    assert 0 < evaluated < 20 and "truncated" in caplog.text


@pytest.mark.ros
def test_live_through_the_real_node(tmp_path, model, capsys):
    bag = tmp_path / "bag"
    write_labelled_frames(bag, frames(8), fps=10)
    out = tmp_path / "live"
    assert eval_bag([str(bag), "--live", "--model", str(model), "--out", str(out), "--timeout", "30"]) == 0
    result = report(out)
    printed = capsys.readouterr().out
    assert result["mode"] == "live" and result["frames"]["published"] == 8
    assert result["frames"]["evaluated"] + result["frames"]["without_prediction"] == 8
    assert result["frames"]["evaluated"] >= 6 and result["latency_ms"]["p50"] > 0
    offline = tmp_path / "offline"
    assert eval_bag([str(bag), "--model", str(model), "--out", str(offline)]) == 0
    if result["frames"]["evaluated"] == 8:  # the node answered every frame: same pixels, same labels
        assert result["metrics"]["miou"] == pytest.approx(report(offline)["metrics"]["miou"])
    assert f"mIoU: {100 * result['metrics']['miou']:.2f} %" in printed
