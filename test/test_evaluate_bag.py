"""bisegunet-eval-bag on real bags written with rosbags: offline, predictions-in-bag and live modes."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from bisegunet_ros.backends import load_backend
from bisegunet_ros.evaluation.bag_io import (TYPESTORE, BagError, BagWriter, class_names_of, read_messages, topics_of,
                                             write_labelled_frames)
from bisegunet_ros.evaluation.evaluate_bag import main as eval_bag
from bisegunet_ros.image_codec import decode_message, image_message
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


def write_prediction_bag(bag, pairs):
    """A bag of (ground truth, prediction) mono8 label images, no camera images, one stamp per pair."""
    image_type = TYPESTORE.types["sensor_msgs/msg/Image"]
    with BagWriter(bag) as writer:
        for i, (labels, prediction) in enumerate(pairs):
            header = TYPESTORE.types["std_msgs/msg/Header"](
                stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=i, nanosec=0), frame_id="camera")
            for topic, image in (("/camera/labels", labels), ("/camera/segmentation/label", prediction)):
                writer.write(topic, "sensor_msgs/msg/Image", i * 10**8, image_message(image_type, header, image, "mono8"))


def test_predictions_equal_to_labels_give_miou_1(tmp_path):
    bag = tmp_path / "bag"
    # a prediction equal to the ground truth wherever the ground truth is not ignored
    write_prediction_bag(bag, ((labels, labels % 255) for _, labels in frames()))
    out = tmp_path / "report"
    assert eval_bag([str(bag), "--pred-topic", "/camera/segmentation/label", "--out", str(out)]) == 0
    result = report(out)
    assert result["metrics"]["miou"] == 1.0 and result["metrics"]["pixel_accuracy"] == 1.0
    assert result["frames"]["evaluated"] == N and result["mode"] == "predictions"
    assert "samples" not in result["plots"] and not (out / "samples.png").exists()   # no images in this bag


def test_void_predictions_are_misses_of_their_ground_truth_class(tmp_path, capsys):
    """255 ("void") and 200 are no class of the model: false negatives of the ground truth, as in Cityscapes."""
    gt = np.array([[0, 0, 0, 1], [1, 1, 2, 255]], np.uint8)
    pred = np.array([[0, 0, 255, 1], [0, 200, 2, 255]], np.uint8)
    write_prediction_bag(tmp_path / "bag", [(gt, pred)])
    out = tmp_path / "report"
    assert eval_bag([str(tmp_path / "bag"), "--pred-topic", "/camera/segmentation/label", "--out", str(out)]) == 0
    metrics = report(out)["metrics"]
    # road: TP 2, FP 1, FN 1 -> 2/4; sidewalk: TP 1, FN 2 (one as road, one as 200) -> 1/3; building: 1/1;
    # the 16 classes in neither ground truth nor prediction are left out of the mean
    assert metrics["iou"]["road"] == pytest.approx(1 / 2) and metrics["iou"]["sidewalk"] == pytest.approx(1 / 3)
    assert metrics["iou"]["building"] == 1.0 and metrics["iou"]["wall"] is None
    assert metrics["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 7)
    assert metrics["unclassified_pixels"] == 2
    assert "predictions outside the model's 19 classes: 2 pixels" in capsys.readouterr().out
    assert "outside the model's classes (e.g. 255 void; misses of their ground-truth class): 2" in \
        (out / "report.md").read_text()


def test_ground_truth_outside_the_classes_is_one_clear_error(tmp_path, caplog):
    gt = np.full((2, 4), 30, np.uint8)    # Cityscapes label ids instead of train ids
    write_prediction_bag(tmp_path / "bag", [(gt, gt)])
    assert eval_bag([str(tmp_path / "bag"), "--pred-topic", "/camera/segmentation/label",
                     "--out", str(tmp_path / "r")]) == 1
    assert "frame 1: ground truth" in caplog.text and "[30]" in caplog.text and "train ids" in caplog.text


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
    decoded = [decode_message(m.decode()) for m in read_messages(bag, [image_topic])]
    for rgb, (_, labels) in zip(decoded, frames()):
        expected.update(labels, pipeline.run([rgb])[0].labels)
    result = report(out)
    assert result["metrics"]["miou"] == pytest.approx(expected.summary()["miou"])
    assert result["frames"]["evaluated"] == N
    for plot in ("per_class_iou.png", "confusion_matrix.png", "latency.png", "samples.png", "report.md"):
        assert (out / plot).stat().st_size > 1000
    assert set(topics_of(tmp_path / "pred")) == {"/camera/labels", *(f"/camera/segmentation/{n}"
                                                                     for n in ("label", "color", "overlay"))}


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


# Finding the images, failing fast, the output bag, the bag's classes


def test_a_jpeg_bag_needs_no_image_topic_and_the_output_bag_scores_alone(tmp_path, model, caplog):
    bag = tmp_path / "bag"
    write_labelled_frames(bag, frames(), image_format="jpeg")
    with caplog.at_level(logging.INFO):
        assert eval_bag([str(bag), "--model", str(model), "--backend", "onnxruntime", "--out", str(tmp_path / "r"),
                         "--out-bag", str(tmp_path / "pred")]) == 0
    assert "reading images from /camera/image_raw/compressed (its only image topic)" in caplog.text
    # the output bag carries the ground truth beside the predictions: it is evaluated on its own
    assert eval_bag([str(tmp_path / "pred"), "--pred-topic", "/camera/segmentation/label",
                     "--out", str(tmp_path / "again")]) == 0
    assert report(tmp_path / "again")["metrics"] == report(tmp_path / "r")["metrics"]
    assert report(tmp_path / "again")["frames"]["evaluated"] == N
    assert class_names_of(tmp_path / "pred") == list(tiny_info().classes.names)


def test_several_image_topics_are_listed(tmp_path, model, caplog):
    bag = tmp_path / "bag"
    image_type = TYPESTORE.types["sensor_msgs/msg/Image"]
    stamp = TYPESTORE.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0)
    header = TYPESTORE.types["std_msgs/msg/Header"](stamp=stamp, frame_id="camera")
    rgb, labels = next(frames(1))
    with BagWriter(bag) as writer:
        for topic, image, encoding in (("/front/image", rgb, "rgb8"), ("/rear/image", rgb, "rgb8"),
                                       ("/camera/labels", labels, "mono8")):
            writer.write(topic, "sensor_msgs/msg/Image", 1, image_message(image_type, header, image, encoding))
    assert eval_bag([str(bag), "--model", str(model), "--out", str(tmp_path / "r")]) == 1
    assert "several image topics, give one with --image-topic: /front/image, /rear/image" in caplog.text
    assert eval_bag([str(bag), "--model", str(model), "--image-topic", "/rear/image",
                     "--out", str(tmp_path / "r")]) == 0


def test_the_bag_is_checked_before_the_model_loads(tmp_path, model, caplog):
    """No TensorRT here: loading the model with it would fail, but the bag's missing topic is found first."""
    write_labelled_frames(tmp_path / "bag", frames(1))
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--backend", "tensorrt", "--label-topic", "/gt",
                     "--out", str(tmp_path / "r")]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "no topic /gt in this bag" in errors[0]
    (tmp_path / "taken").mkdir()
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--backend", "tensorrt", "--out-bag",
                     str(tmp_path / "taken"), "--out", str(tmp_path / "r")]) == 1
    assert f"--out-bag {tmp_path / 'taken'} exists" in caplog.text and "TensorRT" not in caplog.text


def test_a_model_of_another_class_count_than_the_bag_is_refused(tmp_path, model, caplog):
    four = ["road", "lane", "car", "other"]
    write_labelled_frames(tmp_path / "bag", ((rgb, labels % 4) for rgb, labels in frames(2)), class_names=four)
    assert class_names_of(tmp_path / "bag") == four
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--out", str(tmp_path / "r")]) == 1
    assert "its labels are ids of 4 classes (road, lane, car, other), the model has 19 (road, sidewalk" in caplog.text
    renamed = [f"class{i}" for i in range(19)]     # the same count under other names: scored, with a warning
    write_labelled_frames(tmp_path / "bag19", frames(2), class_names=renamed)
    assert eval_bag([str(tmp_path / "bag19"), "--model", str(model), "--out", str(tmp_path / "r")]) == 0
    assert "its labels' classes are named class0" in caplog.text



def test_a_failed_run_leaves_no_output_bag(tmp_path, model, caplog):
    write_labelled_frames(tmp_path / "bag", ((rgb, np.full_like(labels, 30)) for rgb, labels in frames(2)))
    assert eval_bag([str(tmp_path / "bag"), "--model", str(model), "--backend", "onnxruntime", "--out",
                     str(tmp_path / "r"), "--out-bag", str(tmp_path / "pred")]) == 1
    assert "frame 1: ground truth" in caplog.text and not (tmp_path / "pred").exists()
