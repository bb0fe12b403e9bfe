"""The segmentation node: a thin rclpy adapter over SegmentationPipeline.

Subscription callbacks only keep the newest frame of each camera; one worker thread takes the
frames waiting from all cameras, segments them in one batched call and publishes what has
subscribers. A frame replaced before the worker took it is counted as dropped, never queued.
Outputs carry the input frame's header (stamp and frame_id).

Run: `ros2 run bisegunet_ros segment_node --ros-args --params-file config/segment.yaml`
(venv: `python -m bisegunet_ros.segment_node --ros-args ...`).
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from . import dds_profile, node_params
from .backends import load_backend
from .image_codec import ImageDecodeError, decode_message, image_message
from .model_info import ModelError
from .msg import ClassMasks, SegmentationInfo
from .node_stats import NodeStats
from .pipeline import Segmentation, SegmentationPipeline
from .topics import camera_topic as _topic

OUTPUTS = ("label", "color", "overlay", "class_masks", "confidence", "info")
INPUT_QOS = {
    "sensor_data": qos_profile_sensor_data,
    "reliable": QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
    "system_default": qos_profile_system_default,
}
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # rviz2 and best-effort readers both match
WARN_PERIOD_S = 5.0
MISSING_WARN = 0.05  # fraction of a camera's frames lost in transport that turns its diagnostics WARN


class SegmentNode(Node):
    def __init__(self, **kwargs):
        super().__init__("segment_node", automatically_declare_parameters_from_overrides=True, **kwargs)
        self._worker: threading.Thread | None = None  # destroy_node may run on a node whose start failed
        fine, profile = dds_profile.describe()
        (self.get_logger().info if fine else self.get_logger().warning)(profile)  # before any topic exists
        self.params = p = node_params.declare(self)
        backend = load_backend(p["model_path"], p["backend"], p["precision"], p["threads"], p["engine_cache_dir"],
                               len(p["cameras"]), p["max_batch"], p["tf32"])
        classes = backend.info.classes
        self.mask_ids, warning = node_params.resolve_mask_classes(classes, p)
        if warning:
            self.get_logger().warning(warning)
        self.pipeline = SegmentationPipeline(backend, p["output_resolution"],
                                             tuple(node_params.resolve_classes(classes, p, "class_filter")),
                                             p["background_id"])
        self.label_encoding = "mono8"          # the graph gives uint8 class ids (model format 2)
        self.model_name = backend.info.name or p["model_path"]
        self.stats = NodeStats(p["cameras"])
        self.publishers_of = {ns: self._add_camera(ns) for ns in p["cameras"]}
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {p['model_path']} on {backend.name} ({backend.precision}), network "
            f"{backend.info.input_width}x{backend.info.input_height}, {len(classes)} classes, cameras "
            f"{list(self.publishers_of)} ({p['transport']})")

    def declare_parameters(self, namespace: str, parameters: list, ignore_override: bool = False) -> list:
        """Node's, except that a value of None (an empty list [] given in a parameters file or with -p:
        ROS cannot type it) is declared untyped, so that declaring the given parameters at creation
        does not fail on it; node_params then declares each with its type and names what is wrong."""
        for parameter in parameters:
            if len(parameter) == 3 and parameter[1] is None:
                parameter[2].dynamic_typing = True
        return super().declare_parameters(namespace, parameters, ignore_override)

    def _add_camera(self, namespace: str) -> dict:
        """Publishers of one camera's outputs, by output name; subscribes to its images."""
        out = _topic(namespace, "segmentation")
        publishers = {
            "label": self.create_publisher(Image, f"{out}/label", OUTPUT_QOS),
            "color": self.create_publisher(Image, f"{out}/color", OUTPUT_QOS),
            "overlay": self.create_publisher(Image, f"{out}/overlay", OUTPUT_QOS),
            "class_masks": self.create_publisher(ClassMasks, f"{out}/class_masks", OUTPUT_QOS),
            "confidence": self.create_publisher(Image, f"{out}/confidence", OUTPUT_QOS),
            "info": self.create_publisher(SegmentationInfo, f"{out}/info", OUTPUT_QOS),
        }
        compressed = self.params["transport"] == "compressed"
        self.create_subscription(CompressedImage if compressed else Image,
                                 _topic(namespace, "image/compressed" if compressed else "image"),
                                 lambda msg: self.stats.offer(namespace, msg, _seconds(msg.header.stamp)),
                                 INPUT_QOS[self.params["input_qos"]])
        return publishers

    # The worker: takes the newest frame of every camera, segments them in one call, publishes.

    def _work(self) -> None:
        while (taken := self.stats.take()) is not None:
            try:
                self._segment(taken)
            except Exception as exc:  # a failure must not kill the worker: count it, report it, go on
                self.stats.record_failed([camera for camera, _ in taken], repr(exc))
                self.get_logger().error(f"segmentation failed: {exc!r}", throttle_duration_sec=WARN_PERIOD_S)

    def _segment(self, taken: list) -> None:
        started = time.perf_counter()
        jobs = []
        for camera, msg in taken:
            wanted = tuple(name for name in OUTPUTS if self._wants(camera, name))
            self.stats.set_outputs(camera, wanted)
            if not wanted:
                self.stats.record_skipped(camera)
                continue  # nobody listens: no work
            t0 = time.perf_counter()
            try:
                rgb = decode_message(msg)
            except ImageDecodeError as exc:
                self.stats.record_rejected(camera)
                self.get_logger().warning(f"{camera}: frame rejected: {exc}", throttle_duration_sec=WARN_PERIOD_S)
                continue
            jobs.append((camera, msg, rgb, wanted, (time.perf_counter() - t0) * 1e3))
        if not jobs:
            return
        try:
            results = self.pipeline.run([j[2] for j in jobs],
                                        want_confidence=any("confidence" in j[3] for j in jobs),
                                        decode_ms=[j[4] for j in jobs])
        except Exception as exc:  # the backend failed: nothing is published for these frames
            self.stats.record_failed([j[0] for j in jobs], f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"inference failed: {exc}", throttle_duration_sec=WARN_PERIOD_S)
            return
        for (camera, msg, rgb, wanted, _), result in zip(jobs, results):
            self.stats.record_processed(camera, (time.perf_counter() - started) * 1e3)
            try:
                self._publish(camera, msg.header, rgb, wanted, result)
            except Exception as exc:  # inference worked: a publish error is not an inference failure
                self.get_logger().error(f"{camera}: publishing failed: {exc!r}", throttle_duration_sec=WARN_PERIOD_S)

    def _wants(self, camera: str, output: str) -> bool:
        if output == "confidence" and not self.params["publish_confidence"]:
            return False
        return self.publishers_of[camera][output].get_subscription_count() > 0

    def _publish(self, camera: str, header, rgb: np.ndarray, wanted: tuple, result: Segmentation) -> None:
        pubs, labels = self.publishers_of[camera], result.labels
        if "label" in wanted:
            pubs["label"].publish(_image(header, labels, self.label_encoding))
        if "color" in wanted:
            pubs["color"].publish(_image(header, self.pipeline.colorize(labels), "rgb8"))
        if "overlay" in wanted:
            pubs["overlay"].publish(_image(header, self.pipeline.overlay(rgb, labels, self.params["overlay_alpha"]),
                                           "rgb8"))
        if "confidence" in wanted:
            pubs["confidence"].publish(_image(header, result.confidence, "mono8"))
        if "class_masks" in wanted:
            names = self.pipeline.classes.names
            pubs["class_masks"].publish(ClassMasks(
                header=header, class_ids=self.mask_ids, class_names=[names[i] for i in self.mask_ids],
                masks=[_image(header, self.pipeline.class_mask(labels, i), "mono8") for i in self.mask_ids]))
        if "info" in wanted:
            pubs["info"].publish(self._info(camera, header, rgb, result))

    def _info(self, camera: str, header, rgb: np.ndarray, result: Segmentation) -> SegmentationInfo:
        backend, times, counts = self.pipeline.backend, result.times, self.stats.snapshot(camera)
        return SegmentationInfo(
            header=header, model_name=self.model_name, backend=backend.name, precision=backend.precision,
            input_width=rgb.shape[1], input_height=rgb.shape[0],
            network_width=self.pipeline.network_size[1], network_height=self.pipeline.network_size[0],
            decode_ms=times.decode_ms, preprocess_ms=times.preprocess_ms, inference_ms=times.inference_ms,
            postprocess_ms=times.postprocess_ms, total_ms=times.total_ms,
            frames_received=counts.received, frames_processed=counts.processed,
            frames_dropped=counts.dropped, frames_rejected=counts.rejected, frames_failed=counts.failed,
            frames_skipped=counts.skipped, frames_waiting=counts.waiting,
            class_names=list(self.pipeline.classes.names),
            class_fractions=self.pipeline.class_fractions(result.labels).tolist())

    def _publish_diagnostics(self) -> None:
        """One status per camera: ERROR while inference fails, WARN when frames stop, else OK.

        Runs in a timer: an exception here would leave spin() and end the node, so none escapes.
        """
        try:
            array = DiagnosticArray()
            array.header.stamp = self.get_clock().now().to_msg()
            array.status = [self._status(camera) for camera in self.publishers_of]
            self.diagnostics.publish(array)
        except Exception as exc:
            self.get_logger().error(f"diagnostics failed: {exc!r}", throttle_duration_sec=WARN_PERIOD_S)

    def _status(self, camera: str) -> DiagnosticStatus:
        s = self.stats.snapshot(camera)
        status = DiagnosticStatus(name=f"bisegunet_ros: {camera or '/'}", hardware_id=self.model_name)
        if s.failing:
            status.level, status.message = DiagnosticStatus.ERROR, f"inference failing: {s.last_error}"
        elif s.seconds_since_frame > self.params["stale_timeout"]:
            status.level, status.message = DiagnosticStatus.WARN, f"no frame for {s.seconds_since_frame:.1f} s"
        elif s.received and not s.outputs:
            status.level = DiagnosticStatus.OK
            status.message = "frames arrive, but no output has a subscriber: none is segmented"
        else:
            status.level, status.message = DiagnosticStatus.OK, "segmenting"
        values = {
            "fps": f"{s.fps:.2f}", "latency_p50_ms": f"{s.latency_p50_ms:.2f}",
            "latency_p99_ms": f"{s.latency_p99_ms:.2f}", "received": s.received, "processed": s.processed,
            "dropped": s.dropped, "rejected": s.rejected, "failed": s.failed, "skipped": s.skipped,
            "waiting": s.waiting, "last_error": s.last_error,
            "backend": self.pipeline.backend.name, "precision": self.pipeline.backend.precision,
            "model": self.model_name, "outputs": ",".join(s.outputs),
            **s.stream.as_values(),  # transport loss: frames the stamps imply that never arrived
        }
        if status.level == DiagnosticStatus.OK and s.stream.missing > MISSING_WARN:
            status.level = DiagnosticStatus.WARN
            status.message = (f"{100 * s.stream.missing:.0f} % of the frames sent ({s.stream.stamped_hz:.1f} Hz by "
                              f"their stamps) never arrived: transport loss (docs/node.md)")
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def destroy_node(self) -> None:
        if self._worker is not None:
            self.stats.close()
            self._worker.join(timeout=5.0)
            if not self._worker.is_alive():   # the backend's buffers and CUDA context, once nothing infers
                self.pipeline.backend.close()
        super().destroy_node()


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _image(header, array: np.ndarray, encoding: str) -> Image:
    return image_message(Image, header, array, encoding)


def _stop_once(signum: int, frame) -> None:
    """Ctrl-C in a terminal signals the whole process group, and launch then signals its nodes again:
    the first SIGINT stops the node, later ones are ignored so they cannot interrupt its shutdown."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, _stop_once)  # rclpy's handler (installed by init) shuts down, then calls this
    try:
        rclpy.init(args=args)
    except RuntimeError as exc:  # rcl's arguments: a --params-file that is missing or not YAML
        rclpy.logging.get_logger("segment_node").error(str(exc).split(", at ")[0])
        return 1
    try:
        node = SegmentNode()
    except (node_params.ParameterError, ModelError, ValueError, RuntimeError) as exc:
        rclpy.logging.get_logger("segment_node").error(str(exc))
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # stopped while loading the model
        rclpy.try_shutdown()
        return 0
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # SIGINT (Ctrl-C, launch) or a shutdown from outside: the normal way to stop
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
