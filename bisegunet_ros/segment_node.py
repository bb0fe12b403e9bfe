"""The segmentation node: a thin rclpy adapter over SegmentationPipeline.

Subscription callbacks only keep the newest frame of each camera; one worker thread takes the
frames waiting from all cameras, segments them in one batched call and publishes what has
subscribers. A frame replaced before the worker took it is counted as dropped, never queued.
Outputs carry the input frame's header (stamp and frame_id).

Run: `ros2 run bisegunet_ros segment_node --ros-args --params-file config/segment.yaml`
(venv: `python -m bisegunet_ros.segment_node --ros-args ...`).
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from . import node_params
from .backends import load_backend
from .image_codec import ImageDecodeError, decode_compressed, decode_image, encode_image
from .model_info import ModelError
from .msg import ClassMasks, SegmentationInfo
from .pipeline import Segmentation, SegmentationPipeline

OUTPUTS = ("label", "color", "overlay", "class_masks", "confidence", "info")
INPUT_QOS = {
    "sensor_data": qos_profile_sensor_data,
    "reliable": QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
    "system_default": qos_profile_system_default,
}
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # rviz2 and best-effort readers both match
WARN_PERIOD_S = 5.0


@dataclass
class Camera:
    """One camera's subscription, publishers, newest waiting frame and counters."""

    namespace: str
    publishers: dict
    pending: Image | CompressedImage | None = None
    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    last_frame: float = field(default_factory=time.monotonic)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    done_at: deque = field(default_factory=lambda: deque(maxlen=300))
    outputs: tuple = ()


def _topic(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


class SegmentNode(Node):
    def __init__(self, **kwargs):
        super().__init__("segment_node", **kwargs)
        self.params = p = node_params.declare(self)
        backend = load_backend(p["model_path"], p["backend"], p["precision"], p["threads"])
        classes = backend.info.classes
        self.mask_ids = classes.resolve(p["mask_classes"])
        self.pipeline = SegmentationPipeline(backend, p["output_resolution"], tuple(classes.resolve(p["class_filter"])),
                                             p["background_id"])
        self.label_encoding = "mono8"          # the graph gives uint8 class ids (model format 2)
        self.model_name = backend.info.name or p["model_path"]
        self.cameras = [self._add_camera(ns) for ns in p["cameras"]]
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self._wake = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {p['model_path']} on {backend.name} ({backend.precision}), network "
            f"{backend.info.input_width}x{backend.info.input_height}, {len(classes)} classes, cameras "
            f"{[c.namespace for c in self.cameras]} ({p['transport']})")

    def _add_camera(self, namespace: str) -> Camera:
        out = _topic(namespace, "segmentation")
        publishers = {
            "label": self.create_publisher(Image, f"{out}/label", OUTPUT_QOS),
            "color": self.create_publisher(Image, f"{out}/color", OUTPUT_QOS),
            "overlay": self.create_publisher(Image, f"{out}/overlay", OUTPUT_QOS),
            "class_masks": self.create_publisher(ClassMasks, f"{out}/class_masks", OUTPUT_QOS),
            "confidence": self.create_publisher(Image, f"{out}/confidence", OUTPUT_QOS),
            "info": self.create_publisher(SegmentationInfo, f"{out}/info", OUTPUT_QOS),
        }
        camera = Camera(namespace, publishers)
        compressed = self.params["transport"] == "compressed"
        self.create_subscription(CompressedImage if compressed else Image,
                                 _topic(namespace, "image/compressed" if compressed else "image"),
                                 lambda msg: self._on_frame(camera, msg), INPUT_QOS[self.params["input_qos"]])
        return camera

    # Callbacks stay thin: keep the newest frame, wake the worker.

    def _on_frame(self, camera: Camera, msg) -> None:
        with self._wake:
            if camera.pending is not None:
                camera.dropped += 1
            camera.pending = msg
            camera.received += 1
            camera.last_frame = time.monotonic()
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stop or any(c.pending is not None for c in self.cameras))
                if self._stop:
                    return
                taken = [(c, c.pending) for c in self.cameras if c.pending is not None]
                for camera, _ in taken:
                    camera.pending = None
            try:
                self._segment(taken)
            except Exception as exc:  # a backend failure must not kill the worker: report and go on
                self.get_logger().error(f"segmentation failed: {exc!r}", throttle_duration_sec=WARN_PERIOD_S)

    def _segment(self, taken: list) -> None:
        started = time.perf_counter()
        jobs = []
        for camera, msg in taken:
            wanted = tuple(name for name in OUTPUTS if self._wants(camera, name))
            camera.outputs = wanted
            if not wanted:
                continue  # nobody listens: no work
            t0 = time.perf_counter()
            try:
                rgb = self._decode(msg)
            except ImageDecodeError as exc:
                camera.rejected += 1
                self.get_logger().warning(f"{camera.namespace}: frame rejected: {exc}",
                                          throttle_duration_sec=WARN_PERIOD_S)
                continue
            jobs.append((camera, msg, rgb, wanted, (time.perf_counter() - t0) * 1e3))
        if not jobs:
            return
        results = self.pipeline.run([j[2] for j in jobs], want_confidence=any("confidence" in j[3] for j in jobs),
                                    decode_ms=[j[4] for j in jobs])
        for (camera, msg, rgb, wanted, _), result in zip(jobs, results):
            camera.processed += 1
            self._publish(camera, msg.header, rgb, wanted, result)
            camera.latencies_ms.append((time.perf_counter() - started) * 1e3)
            camera.done_at.append(time.monotonic())

    def _wants(self, camera: Camera, output: str) -> bool:
        if output == "confidence" and not self.params["publish_confidence"]:
            return False
        return camera.publishers[output].get_subscription_count() > 0

    def _decode(self, msg) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            return decode_compressed(msg.format, msg.data)
        return decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)

    def _publish(self, camera: Camera, header, rgb: np.ndarray, wanted: tuple, result: Segmentation) -> None:
        pubs, labels = camera.publishers, result.labels
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

    def _info(self, camera: Camera, header, rgb: np.ndarray, result: Segmentation) -> SegmentationInfo:
        backend, times = self.pipeline.backend, result.times
        return SegmentationInfo(
            header=header, model_name=self.model_name, backend=backend.name, precision=backend.precision,
            input_width=rgb.shape[1], input_height=rgb.shape[0],
            network_width=self.pipeline.network_size[1], network_height=self.pipeline.network_size[0],
            decode_ms=times.decode_ms, preprocess_ms=times.preprocess_ms, inference_ms=times.inference_ms,
            postprocess_ms=times.postprocess_ms, total_ms=times.total_ms,
            frames_received=camera.received, frames_processed=camera.processed,
            frames_dropped=camera.dropped, frames_rejected=camera.rejected,
            class_names=list(self.pipeline.classes.names),
            class_fractions=self.pipeline.class_fractions(result.labels).tolist())

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self.cameras:
            recent = [t for t in camera.done_at if now - t <= 5.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            latencies = np.asarray(camera.latencies_ms) if camera.latencies_ms else np.zeros(1)
            stale = now - camera.last_frame > self.params["stale_timeout"]
            status = DiagnosticStatus(
                level=DiagnosticStatus.WARN if stale else DiagnosticStatus.OK,
                name=f"bisegunet_ros: {camera.namespace or '/'}", hardware_id=self.model_name,
                message=f"no frame for {now - camera.last_frame:.1f} s" if stale else "segmenting")
            values = {
                "fps": f"{fps:.2f}", "latency_p50_ms": f"{np.percentile(latencies, 50):.2f}",
                "latency_p99_ms": f"{np.percentile(latencies, 99):.2f}", "received": camera.received,
                "processed": camera.processed, "dropped": camera.dropped, "rejected": camera.rejected,
                "backend": self.pipeline.backend.name, "precision": self.pipeline.backend.precision,
                "model": self.model_name, "outputs": ",".join(camera.outputs),
            }
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            array.status.append(status)
        self.diagnostics.publish(array)

    def destroy_node(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def _image(header, array: np.ndarray, encoding: str) -> Image:
    step, data = encode_image(array, encoding)
    return Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
                 is_bigendian=0, step=step, data=data)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = SegmentNode()
    except (node_params.ParameterError, ModelError, ValueError, RuntimeError) as exc:
        rclpy.logging.get_logger("segment_node").error(str(exc))
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
