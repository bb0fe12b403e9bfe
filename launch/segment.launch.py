"""Start the segmentation node (and optionally rviz2) on the vehicle.

    ros2 launch bisegunet_ros segment.launch.py model:=/path/model.onnx cameras:="[front, rear]"

Arguments: model, cameras (namespaces; each <ns>/image in, <ns>/segmentation/* out), params_file
(defaults to the installed config/segment.yaml), backend, namespace, use_rviz. A camera driver
that publishes elsewhere is connected by choosing its namespace in `cameras` (a driver's
`/front/image` -> cameras:="[front]"), or by a remapping in a launch file of your own that
includes this one (docs/node.md).
"""
from typing import List

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("bisegunet_ros")
    args = [
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution([share, "models", "bisegunet_tiny.onnx"]),
                              description="ONNX model written by bisegunet-export (default: the shipped tiny model)"),
        DeclareLaunchArgument("cameras", default_value="[camera]", description="camera namespaces, YAML list"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "segment.yaml"])),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto | onnxruntime | onnxruntime-cuda | tensorrt"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_rviz", default_value="false"),
    ]
    node = Node(
        package="bisegunet_ros",
        executable="segment_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "cameras": ParameterValue(LaunchConfiguration("cameras"), value_type=List[str]),
            },
        ],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "segment.rviz"])],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription([*args, node, rviz])
