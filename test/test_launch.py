"""segment.launch.py started by launch_pytest: the node comes up and labels arrive.

launch and launch_pytest exist only on a ROS 2 install (they are not on PyPI); here this file
is skipped with that reason.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest needs a ROS 2 install (not on PyPI)")

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_client import RosClient  # noqa: E402
from tiny_onnx import write_tiny_onnx  # noqa: E402

MODEL = write_tiny_onnx(Path(tempfile.mkdtemp()) / "tiny.onnx")


@launch_pytest.fixture
def segment_launch():
    launch_file = Path(get_package_share_directory("bisegunet_ros")) / "launch" / "segment.launch.py"
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file)),
                                 launch_arguments={"model": str(MODEL), "cameras": "[front]",
                                                   "backend": "onnxruntime"}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=segment_launch)
def test_labels_arrive_with_the_input_stamp():
    client = RosClient("launch_test_client")
    try:
        labels = client.subscribe("/front/segmentation/label", Image)
        frame = Image(height=32, width=64, encoding="rgb8", step=192,
                      data=np.zeros((32, 192), np.uint8).tobytes())
        frame.header.frame_id = "front"
        reply = client.request("/front/image", frame, labels, timeout=60)
        assert reply is not None and reply.header.frame_id == "front"
    finally:
        client.close()
