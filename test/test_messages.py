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


def test_class_masks_fields_are_what_the_definition_says():
    """msg/ClassMasks.msg as generated: uint16 class ids (every train id, no more), Image masks."""
    from bisegunet_ros.msg import ClassMasks
    from sensor_msgs.msg import Image

    msg = ClassMasks(class_ids=[0, 65535], class_names=["road", "last"], masks=[Image(), Image()])
    assert list(msg.class_ids) == [0, 65535]
    for bad in ([65536], [-1]):
        with pytest.raises((AssertionError, OverflowError)):
            msg.class_ids = bad
    assert all(isinstance(m, Image) for m in msg.masks)


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
