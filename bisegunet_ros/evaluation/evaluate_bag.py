"""`bisegunet-eval-bag`: measure a model (or recorded predictions) on a ROS 2 bag.

    bisegunet-eval-bag BAG --model M.onnx                 # offline: the node's pipeline on every frame
    bisegunet-eval-bag BAG --model M.onnx --live          # through a node over DDS, as on the vehicle
    bisegunet-eval-bag BAG --pred-topic /camera/segmentation/label   # predictions already in the bag

Ground truth is a mono8 label image per frame (class ids of the model, 255 = ignore), matched to the image
(and prediction) by header stamp. Metrics come from one confusion matrix over the whole bag
(metrics.py, the same code training validates with); a predicted value outside the model's
classes (e.g. 255 "void") is a miss of the ground-truth class, as in the official Cityscapes
evaluation, and counted in the report. Writes report.json, report.md and plots (sample pictures
only when the bag's images are read: with --pred-topic, give --image-topic for them).

Inputs are checked before the model loads: the model's metadata, --out-bag, the topics (without
--image-topic: /camera/image_raw, else the bag's only Image or CompressedImage topic besides the
labels), and the class names a make-bag bag records against the model's (check_classes).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..classes import CITYSCAPES, IGNORE_INDEX, ClassFileError, load_class_definition
from ..cli_args import COUNT_OR_ALL, POSITIVE
from ..image_codec import ImageDecodeError, decode_labels, decode_message, image_message
from ..metrics import ConfusionMatrix
from ..model_info import ModelError, ModelInfo
from ..resources import find_resource
from .bag_io import (CLASS_NAMES_KEY, TYPESTORE, BagError, BagWriter, check_topics, class_names_of, find_image_topic,
                     read_messages)
from .report import write_report

log = logging.getLogger(__name__)
N_SAMPLES = 4
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"


def stamp_of(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class Matcher:
    """Pairs messages of several roles (image, label, prediction) by header stamp, streaming."""

    def __init__(self, roles: tuple[str, ...]):
        self.roles = roles
        self.pending: dict[tuple[int, int], dict] = {}

    def add(self, role: str, msg) -> dict | None:
        """Store `msg`; return the complete {role: msg} group once every role has arrived."""
        group = self.pending.setdefault(stamp_of(msg), {})
        group[role] = msg
        if len(group) == len(self.roles):
            return self.pending.pop(stamp_of(msg))
        return None

    def unmatched(self) -> dict[str, int]:
        """Frames that never got a partner: with no ground truth, and ground truth with no prediction."""
        return {"without_ground_truth": sum(1 for g in self.pending.values() if "label" not in g),
                "without_prediction": sum(1 for g in self.pending.values() if "label" in g)}


class Evaluation:
    """Accumulates the confusion matrix, latencies and a few samples for the report."""

    def __init__(self, classes):
        self.classes = classes
        self.matrix = ConfusionMatrix(len(classes), IGNORE_INDEX)
        self.latencies_ms: list[float] = []
        self.samples: list = []
        self.evaluated = 0
        self.undecodable = 0

    def add(self, rgb: np.ndarray | None, gt: np.ndarray, pred: np.ndarray) -> None:
        if pred.shape != gt.shape:
            import cv2

            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        try:
            self.matrix.update(gt, pred)
        except ValueError as exc:
            raise ValueError(f"frame {self.evaluated + 1}: {exc}; ground truth must hold the model's "
                             f"{self.matrix.num_classes} class ids (train ids), 255 = ignore") from exc
        if rgb is not None and len(self.samples) < N_SAMPLES and self.evaluated % 5 == 0:
            self.samples.append((rgb, gt, pred))
        self.evaluated += 1


def run_offline(args, evaluation: Evaluation, pipeline=None) -> dict:
    """Offline (pipeline given) or --pred-topic (predictions in the bag): one streaming pass."""
    roles = {args.image_topic: "image", args.label_topic: "label"}
    if pipeline is None:
        roles = {args.pred_topic: "pred", args.label_topic: "label", **({args.image_topic: "image"}
                                                                        if args.image_topic else {})}
    matcher = Matcher(tuple(roles.values()))
    prefix = args.image_topic.removesuffix("/compressed").rsplit("/", 1)[0] if args.image_topic else ""
    started = time.perf_counter()
    with BagWriter(args.out_bag) if args.out_bag else contextlib.nullcontext() as writer:
        if writer:
            writer.record(CLASS_NAMES_KEY, list(pipeline.classes.names))
        for message in tqdm(read_messages(args.bag, list(roles)), desc="evaluating", unit="msg", disable=None):
            group = matcher.add(roles[message.topic], message.decode())
            if group is None:
                continue
            try:
                rgb = decode_message(group["image"]) if "image" in group else None
                gt = decode_labels(group["label"])
                if pipeline is None:
                    pred = decode_labels(group["pred"])
                else:
                    t0 = time.perf_counter()
                    pred = pipeline.run([rgb])[0].labels
                    evaluation.latencies_ms.append((time.perf_counter() - t0) * 1e3)
                    if writer:
                        _write_predictions(writer, pipeline, prefix, group["image"].header, message.timestamp,
                                           rgb, pred)
                        writer.write(args.label_topic, "sensor_msgs/msg/Image", message.timestamp, group["label"])
            except ImageDecodeError as exc:
                evaluation.undecodable += 1
                log.warning("frame %s skipped: %s", stamp_of(group["label"]), exc)
                continue
            evaluation.add(rgb, gt, pred)
            if args.max_frames and evaluation.evaluated >= args.max_frames:
                break
    return {**matcher.unmatched(), "seconds": time.perf_counter() - started}


def _write_predictions(writer: BagWriter, pipeline, prefix: str, header, timestamp: int, rgb, labels) -> None:
    """label, colour and overlay images for rviz2 playback beside the input (the ground truth goes beside them)."""
    image_type = TYPESTORE.types["sensor_msgs/msg/Image"]
    for name, array, encoding in (("label", labels, "mono8"), ("color", pipeline.colorize(labels), "rgb8"),
                                  ("overlay", pipeline.overlay(rgb, labels, 0.5), "rgb8")):
        writer.write(f"{prefix}/segmentation/{name}", "sensor_msgs/msg/Image", timestamp,
                     image_message(image_type, header, array, encoding))


def run_live(args, evaluation: Evaluation) -> dict:
    """--live: replay the bag's frames into a node (started here when --model is given) over DDS."""
    from .live_replay import LiveReplay, node_command

    frames, labels = [], {}
    for message in read_messages(args.bag, [args.image_topic, args.label_topic]):
        msg = message.decode()
        if message.topic == args.image_topic:
            frames.append((stamp_of(msg), message))
        else:
            labels[stamp_of(msg)] = message
        if args.max_frames and len(frames) >= args.max_frames and len(labels) >= args.max_frames:
            break
    compressed = frames and frames[0][1].msgtype.endswith("CompressedImage")
    node = None
    if args.model:
        from subprocess import Popen

        node = Popen(node_command(args.model, args.namespace, bool(compressed), args.backend))
    replay = LiveReplay(args.namespace, bool(compressed))
    try:
        replay.wait_for_node(args.timeout)
        result = replay.replay(frames, args.rate, settle=args.timeout)
    finally:
        replay.close()
        if node is not None:
            node.terminate()
            node.wait(10)
    images = dict(frames)
    for stamp, reply in result.replies.items():
        if stamp not in labels:
            continue
        sample = evaluation.evaluated % 5 == 0 and len(evaluation.samples) < N_SAMPLES
        rgb = decode_message(images[stamp].decode()) if sample else None
        evaluation.add(rgb, decode_labels(labels[stamp].decode()), decode_labels(reply.labels))
        evaluation.latencies_ms.append(reply.latency_ms)
    return {"without_ground_truth": sum(1 for s, _ in frames if s not in labels),
            "without_prediction": result.published - len(result.replies), "published": result.published,
            "fps": result.fps}


def check_classes(bag: Path, classes) -> None:
    """A bag from bisegunet-make-bag records its labels' classes: another class count is an error (the ids would
    mean other classes), other names a warning. Other bags record none; their ids are taken as the model's."""
    recorded = class_names_of(bag)
    if recorded is None or list(recorded) == list(classes.names):
        return
    if len(recorded) != len(classes):
        raise ValueError(f"{bag}: its labels are ids of {len(recorded)} classes ({', '.join(recorded)}), the model "
                         f"has {len(classes)} ({', '.join(classes.names)}); evaluate a model trained on the bag's "
                         "classes")
    log.warning("%s: its labels' classes are named %s, the model's %s; scored by id", bag, ", ".join(recorded),
                ", ".join(classes.names))


def summarize(evaluation: Evaluation, class_names: list[str]) -> dict:
    summary = evaluation.matrix.summary(class_names)
    return {k: summary[k] for k in ("miou", "mean_dice", "pixel_accuracy", "iou", "dice", "unclassified_pixels")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="bag directory (mcap or sqlite3)")
    parser.add_argument("--image-topic", help=f"Image or CompressedImage topic (default {DEFAULT_IMAGE_TOPIC}, or the "
                        "bag's only image topic besides the labels; with --pred-topic, none: give one for sample "
                        "pictures)")
    parser.add_argument("--label-topic", default="/camera/labels", help="ground truth: mono8 train ids, 255 ignore")
    parser.add_argument("--pred-topic", help="evaluate label images recorded in the bag instead of running a model")
    parser.add_argument("--model", help="ONNX from bisegunet-export, or a shipped model's name (bisegunet_fast); "
                        "offline, or with --live a node started with it")
    parser.add_argument("--classes", help="without --model: class definition file of the labels (default: Cityscapes)")
    parser.add_argument("--backend", default="auto", help="auto | onnxruntime | onnxruntime-cuda | tensorrt")
    parser.add_argument("--live", action="store_true", help="evaluate through a segmentation node over DDS")
    parser.add_argument("--namespace", default="camera", help="--live: the node's camera namespace")
    parser.add_argument("--rate", type=POSITIVE, default=1.0, help="--live: replay speed relative to the recording")
    parser.add_argument("--timeout", type=POSITIVE, default=30.0, help="--live: seconds to wait for the node")
    parser.add_argument("--max-frames", type=COUNT_OR_ALL, default=0, help="stop after this many frames (0 = all)")
    parser.add_argument("--out", type=Path, help="report directory (default reports/<bag name>)")
    parser.add_argument("--out-bag", type=Path, help="offline: write the predicted label/colour/overlay images and "
                        "the ground truth (--label-topic) to this bag")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (args.pred_topic or args.model or args.live):
        parser.error("give --model (run a model), --pred-topic (predictions in the bag) or --live (running node)")
    if args.image_topic is None and args.pred_topic:
        args.image_topic = ""
    if args.image_topic == "" and not args.pred_topic:
        parser.error("--image-topic is empty: running a model needs the bag's images")
    if args.classes and args.model:
        parser.error("--classes is for recorded predictions without --model: a model carries its own classes")
    if args.out_bag and (args.live or args.pred_topic):
        parser.error("--out-bag is for the offline mode (--model without --live or --pred-topic)")
    out = args.out or Path("reports") / args.bag.name

    out_bag_written = False        # by this run: removed again when the run fails
    try:   # every input is checked before the model loads: a wrong file, bag or topic fails in a moment
        pipeline, backend = None, None
        classes = load_class_definition(args.classes).table if args.classes else CITYSCAPES
        if args.model:
            args.model = str(find_resource("model", args.model))
            classes = ModelInfo.from_onnx(args.model).classes
        if args.out_bag and args.out_bag.exists():
            raise FileExistsError(f"--out-bag {args.out_bag} exists; remove it or choose another path")
        out_bag_written = bool(args.out_bag)
        if args.image_topic is None:
            args.image_topic = find_image_topic(args.bag, DEFAULT_IMAGE_TOPIC, (args.label_topic,))
        topics = [t for t in (args.image_topic, args.label_topic, args.pred_topic) if t]
        if len(set(topics)) < len(topics):
            parser.error(f"image, label and prediction topics must differ, got {', '.join(topics)}")
        check_topics(args.bag, topics)
        check_classes(args.bag, classes)
        if args.model and not args.live and not args.pred_topic:
            from ..backends import load_backend
            from ..pipeline import SegmentationPipeline

            pipeline = SegmentationPipeline(load_backend(args.model, args.backend))
            classes, backend = pipeline.classes, pipeline.backend.name
        evaluation = Evaluation(classes)
        mode = "live" if args.live else "predictions" if args.pred_topic else "offline"
        frames = run_live(args, evaluation) if args.live else run_offline(args, evaluation, pipeline)
    except (BagError, ModelError, ClassFileError, TimeoutError, OSError, ValueError) as exc:
        if out_bag_written:
            shutil.rmtree(args.out_bag, ignore_errors=True)     # no half-written output bag stays
        log.error("%s", exc)
        return 1
    if evaluation.evaluated == 0:
        log.error("%s: no frame could be evaluated (no image/label pairs with equal stamps)", args.bag)
        return 1

    lat = np.asarray(evaluation.latencies_ms)
    result = {
        "bag": str(args.bag), "mode": mode, "model": args.model, "backend": backend or ("node" if args.live else None),
        "frames": {"evaluated": evaluation.evaluated, "undecodable": evaluation.undecodable, **frames},
        "metrics": summarize(evaluation, list(classes.names)),
        "latency_ms": {"kind": "end-to-end (publish to label received)" if args.live else "pipeline",
                       "p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99))} if lat.size else None,
        "fps": frames.get("fps", evaluation.evaluated / frames["seconds"] if frames.get("seconds") else 0.0),
    }
    try:
        report = write_report(out, result, evaluation.matrix.matrix, list(classes.names), evaluation.latencies_ms,
                              evaluation.samples, classes.palette_array())
    except OSError as exc:
        log.error("cannot write the report: %s", exc)
        return 1
    m = result["metrics"]
    print(f"frames evaluated: {evaluation.evaluated}  mIoU: {100 * m['miou']:.2f} %  mean Dice: "
          f"{100 * m['mean_dice']:.2f} %  pixel accuracy: {100 * m['pixel_accuracy']:.2f} %")
    if result["latency_ms"]:
        print(f"fps: {result['fps']:.1f}  latency p50 {result['latency_ms']['p50']:.1f} ms, "
              f"p90 {result['latency_ms']['p90']:.1f} ms ({result['latency_ms']['kind']})")
    if args.live:
        print(f"frames published: {frames['published']}  answered: {frames['published'] - frames['without_prediction']}"
              f"  dropped by the node: {frames['without_prediction']}")
    if m["unclassified_pixels"]:
        print(f"predictions outside the model's {len(classes)} classes: {m['unclassified_pixels']} pixels "
              "(counted as misses of their ground-truth class)")
    print(f"report: {report} (+ report.md and plots in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
