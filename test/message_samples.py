"""Deterministic sample messages, built the same way in a publisher process and in the test."""
from __future__ import annotations

import sys
import time

import numpy as np

from bisegunet_ros.msg import ClassMasks, SegmentationInfo
from sensor_msgs.msg import Image

MASK_SHAPE = (512, 1024)


def class_masks() -> ClassMasks:
    msg = ClassMasks()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    msg.header.frame_id = "camera_front"
    msg.class_ids = [0, 11, 13]
    msg.class_names = ["road", "person", "car"]
    rng = np.random.default_rng(7)
    for _ in msg.class_ids:
        mask = Image(height=MASK_SHAPE[0], width=MASK_SHAPE[1], encoding="mono8", step=MASK_SHAPE[1])
        mask.header = msg.header
        mask.data = ((rng.random(MASK_SHAPE) > 0.5).astype(np.uint8) * 255).tobytes()
        msg.masks.append(mask)
    return msg


def segmentation_info() -> SegmentationInfo:
    msg = SegmentationInfo(model_name="bisegunet_tiny", backend="onnxruntime-cpu", precision="fp32",
                           input_width=2048, input_height=1024, network_width=1024, network_height=512,
                           decode_ms=1.5, preprocess_ms=2.5, inference_ms=30.25, postprocess_ms=3.0,
                           total_ms=37.25, frames_received=10, frames_processed=8, frames_dropped=1,
                           frames_rejected=1, class_names=["road", "car"], class_fractions=[0.75, 0.25])
    msg.header.frame_id = "camera_front"
    msg.header.stamp.sec = 42
    return msg


SAMPLES = {"class_masks": class_masks, "segmentation_info": segmentation_info}


def publish_forever(kind: str, topic: str) -> None:
    """Publisher process: the sample on `topic`, 5 times a second, until SIGINT."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    msg = SAMPLES[kind]()
    rclpy.init()
    node = rclpy.create_node("sample_publisher")
    pub = node.create_publisher(type(msg), topic, 2)
    try:
        while rclpy.ok():
            pub.publish(msg)
            time.sleep(0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    publish_forever(sys.argv[1], sys.argv[2])
