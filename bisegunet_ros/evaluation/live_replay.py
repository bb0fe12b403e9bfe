"""Replay a bag's camera frames into a running segmentation node and collect its label replies.

Frames are published as the recorded CDR bytes (no re-serialisation) at the recorded rate x
`rate`; replies are matched by header stamp. What comes back measures the node as deployed:
end-to-end latency (publish to label received, across processes) and frames the node dropped.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from .bag_io import BagMessage

log = logging.getLogger(__name__)


@dataclass
class Reply:
    labels: Image
    latency_ms: float


@dataclass
class ReplayResult:
    published: int = 0
    replies: dict = field(default_factory=dict)     # stamp -> Reply
    first_publish: float = 0.0
    last_reply: float = 0.0

    @property
    def fps(self) -> float:
        span = self.last_reply - self.first_publish
        return len(self.replies) / span if span > 0 and self.replies else 0.0


def node_command(model: str, namespace: str, compressed: bool, backend: str) -> list[str]:
    """The command that starts a segmentation node for one camera namespace."""
    return [sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", "-p", f"model_path:={model}",
            "-p", f"cameras:=[{namespace}]", "-p", f"transport:={'compressed' if compressed else 'raw'}",
            "-p", f"backend:={backend}", "-p", "input_qos:=reliable"]


class LiveReplay:
    """Publisher to `<ns>/image[/compressed]` and subscriber to `<ns>/segmentation/label`."""

    def __init__(self, namespace: str, compressed: bool):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bisegunet_eval_bag", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        msg_type = CompressedImage if compressed else Image
        self.input_topic = f"/{namespace}/image" + ("/compressed" if compressed else "")
        self.label_topic = f"/{namespace}/segmentation/label"
        # reliable and deep enough for a burst: the node itself keeps only the newest frame
        self.publisher = self.node.create_publisher(msg_type, self.input_topic,
                                                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.sent_at: dict[tuple[int, int], float] = {}
        self.result = ReplayResult()
        self.node.create_subscription(Image, self.label_topic, self._on_labels,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

    def _on_labels(self, msg: Image) -> None:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        now = time.monotonic()
        if stamp in self.sent_at and stamp not in self.result.replies:
            self.result.replies[stamp] = Reply(msg, (now - self.sent_at[stamp]) * 1e3)
            self.result.last_reply = now

    def wait_for_node(self, timeout: float) -> None:
        """Block until the node subscribes to our frames and publishes labels, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.publisher.get_subscription_count() > 0 and self.node.count_publishers(self.label_topic) > 0:
                self.spin_for(1.0)  # let the node see our label subscription too
                return
            self.spin_for(0.1)
        raise TimeoutError(f"no node subscribed to {self.input_topic} and published {self.label_topic} within "
                           f"{timeout:.0f} s; start one (or pass --model to let this tool start it)")

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.executor.spin_once(timeout_sec=min(left, 0.01))

    def replay(self, frames: list[tuple[tuple[int, int], BagMessage]], rate: float, settle: float,
               idle: float = 3.0) -> ReplayResult:
        """Publish `frames` (stamp, bag message) on the recorded schedule x rate, then wait for stragglers:
        until every frame is answered, `idle` s pass without a reply, or `settle` s in all."""
        if not frames:
            return self.result
        start, first_ts = time.monotonic(), frames[0][1].timestamp
        self.result.first_publish = start
        for stamp, message in frames:
            self.spin_for(start + (message.timestamp - first_ts) / 1e9 / rate - time.monotonic())
            self.sent_at[stamp] = time.monotonic()
            self.publisher.publish(message.raw)
            self.result.published += 1
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and len(self.result.replies) < self.result.published:
            if time.monotonic() - max(self.result.last_reply, self.sent_at[frames[-1][0]]) > idle:
                break  # the rest were dropped by the node
            self.spin_for(0.05)
        return self.result

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
