"""The generated messages: import, serialise, and cross a process boundary intact."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message

from message_samples import SAMPLES

HERE = Path(__file__).parent


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_round_trip_through_cdr(kind):
    msg = SAMPLES[kind]()
    raw = serialize_message(msg)
    assert deserialize_message(raw, type(msg)) == msg


def test_class_masks_are_binary_and_label_sized():
    msg = SAMPLES["class_masks"]()
    assert len(msg.masks) == len(msg.class_ids) == len(msg.class_names) == 3
    for mask in msg.masks:
        assert (mask.height, mask.width, mask.encoding) == (512, 1024, "mono8")
        assert set(bytes(mask.data)) == {0, 255}


@pytest.mark.ros
@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_received_equal_from_another_process(kind, ros_process, rclpy_node):
    topic = f"/test_{kind}"
    expected = SAMPLES[kind]()
    received = []
    rclpy_node.create_subscription(type(expected), topic, received.append, 2)
    publisher = ros_process([sys.executable, str(HERE / "message_samples.py"), kind, topic],
                            wait_topics=[topic])
    import rclpy

    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_node.context)
    executor.add_node(rclpy_node)
    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    output = publisher.stop()
    assert received, f"nothing received on {topic}; publisher said:\n{output}"
    assert received[0] == expected
