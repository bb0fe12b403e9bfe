"""The test side of a conversation with a node in another process: publish, collect, wait."""
from __future__ import annotations

import itertools
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

_stamps = itertools.count(1)


class RosClient:
    """One rclpy context, node and executor in the test process."""

    def __init__(self, name: str = "test_client"):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._publishers = {}

    def subscribe(self, topic: str, msg_type, depth: int = 50) -> list:
        """Everything received on `topic`, appended as it arrives while the client spins."""
        received = []
        self.node.create_subscription(msg_type, topic, received.append,
                                      QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))
        return received

    def publish(self, topic: str, msg) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(type(msg), topic, 10)
        self._publishers[topic].publish(msg)

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=min(0.05, left))   # never wait past the deadline
        return predicate()

    def request(self, topic: str, msg, replies: list, timeout: float = 20.0, resend: float = 0.5):
        """Stamp `msg` uniquely, publish it until a reply with that stamp arrives; return the reply or None."""
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000, next(_stamps)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

        def match():
            return next((r for r in replies if (r.header.stamp.sec, r.header.stamp.nanosec) == stamp), None)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish(topic, msg)
            if self.spin_until(lambda: match() is not None, resend):
                return match()
        return None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
