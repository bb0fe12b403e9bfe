"""A camera driver in its own process: a best-effort (sensor-data QoS) rgb8 stream at a fixed rate.

    python test/camera_driver.py TOPIC --frames 50 --rate 10 --width 1024 --height 512

Waits until a subscriber has matched, then publishes `frames` frames stamped on the driver's
schedule (frame i at t0 + i / rate), like a camera, and prints how many it sent. Its Fast DDS
profile comes from the environment (FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE), as a real driver's would.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topic")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--match-timeout", type=float, default=30.0)
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("camera_driver")
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print(f"no subscriber on {args.topic} within {args.match_timeout} s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(0.5)  # let the match settle on both sides
    pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width * 3), np.uint8).tobytes()
    frame = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3, data=pixels)
    frame.header.frame_id = "camera"
    t0_clock, t0 = node.get_clock().now().nanoseconds, time.monotonic()
    for i in range(args.frames):
        time.sleep(max(0.0, t0 + i / args.rate - time.monotonic()))
        stamp = t0_clock + round(i * 1e9 / args.rate)
        frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        publisher.publish(frame)
    print(f"sent {args.frames}")
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
