"""Start the segmentation node (and optionally rviz2) on the vehicle.

    ros2 launch bisegunet_ros segment.launch.py model:=/path/model.onnx cameras:="[front, rear]"

Arguments (`ros2 launch bisegunet_ros segment.launch.py --show-args`): model, cameras (namespaces;
each <ns>/image in, <ns>/segmentation/* out), params_file (defaults to the installed
config/segment.yaml), backend, precision, max_batch, tf32, output_resolution, input_qos, transport, mask_classes
(empty: as in params_file), namespace, dds_profile, use_rviz. A missing params_file or dds_profile,
or use_rviz without rviz2 installed, ends the launch with one error before anything starts. A
camera driver that publishes elsewhere is connected by choosing its namespace in `cameras` (a
driver's `/front/image` -> cameras:="[front]"), or by a remapping in a launch file of your own that
includes this one (docs/node.md).
Uses only launch/launch_ros API that Humble has (OpaqueFunction, OnProcessExit, Node additional_env).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bisegunet_ros.dds_profile import profile_environment
from bisegunet_ros.resources import SHIPPED_MODEL
from bisegunet_ros.rviz_config import write_rviz_config

# Launch arguments that override the parameters file only when given (default "").
OVERRIDES = {
    "backend": "auto | onnxruntime | onnxruntime-cuda | tensorrt",
    "precision": "TensorRT engine precision: fp32 | fp16 | int8",
    "max_batch": "TensorRT engine's largest batch; 0 = number of cameras",
    "tf32": "TensorRT: TF32 tactics for FP32 layers, true | false",
    "output_resolution": "input | network",
    "input_qos": "sensor_data | reliable | system_default",
    "transport": "raw | compressed",
}
OFF = ("", "none", "off", "false")


def _name_list(name: str, text: str, example: str) -> list[str]:
    """The YAML list of names of launch argument `name`; ROS cannot type [], so [] becomes ['']."""
    names = yaml.safe_load(text)
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(c, (str, int)) for c in names):
        raise ValueError(f"launch argument '{name}' must be a YAML list, e.g. \"{example}\"; got {text!r}")
    return [str(c) for c in names] or [""]


def _existing_file(name: str, path: str, what: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"launch argument {name}:={path}: no such file ({what})")
    return path


def _fail_unless_clean(event: ProcessExited, context: LaunchContext) -> None:
    """A node that ends with an error ends the launch with one, instead of leaving it idle or exiting 0."""
    if event.returncode != 0:
        raise RuntimeError(f"{event.process_name} exited with code {event.returncode} "
                           f"(its error is logged above)")


def _launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    cameras = _name_list("cameras", arg("cameras"), "[front, rear]")
    overrides = {"model_path": arg("model"), "cameras": cameras}
    overrides.update({name: arg(name) for name in OVERRIDES if arg(name)})
    if arg("mask_classes"):
        overrides["mask_classes"] = _name_list("mask_classes", arg("mask_classes"), "[road, car]")
    params_file = _existing_file("params_file", arg("params_file"), "the node's parameters, YAML")
    profile = arg("dds_profile")
    if profile.lower() not in OFF:
        _existing_file("dds_profile", profile, "a Fast DDS profile, XML; 'none' for Fast DDS defaults")
    use_rviz = arg("use_rviz").lower() not in OFF
    if use_rviz:
        try:
            get_package_prefix("rviz2")
        except PackageNotFoundError:
            raise RuntimeError("use_rviz:=true needs rviz2, which is not installed (e.g. sudo apt install "
                               "ros-$ROS_DISTRO-rviz2); nothing was started") from None
    node = Node(
        package="bisegunet_ros",
        executable="segment_node",
        namespace=arg("namespace"),
        parameters=[params_file, overrides],
        additional_env={} if profile.lower() in OFF else profile_environment(profile),
        output="screen",
    )
    actions = [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_fail_unless_clean))]
    if use_rviz:
        config = tempfile.NamedTemporaryFile("w", prefix="bisegunet_", suffix=".rviz", delete=False).name
        write_rviz_config(arg("rviz_template"), config, cameras, arg("namespace"))
        actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", config], output="log"))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("bisegunet_ros")
    args = [
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution([share, "models", f"{SHIPPED_MODEL}.onnx"]),
                              description="ONNX model written by bisegunet-export (default: the shipped model)"),
        DeclareLaunchArgument("cameras", default_value="[camera]", description="camera namespaces, YAML list"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "segment.yaml"]),
                              description="node parameters (YAML); the arguments here override it"),
        *[DeclareLaunchArgument(name, default_value="", description=f"{text} (empty: as in params_file)")
          for name, text in OVERRIDES.items()],
        DeclareLaunchArgument("mask_classes", default_value="",
                              description="classes published in class_masks, YAML list (empty: as in params_file; "
                                          "by default those of road, person, car the model has)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument(
            "dds_profile", default_value=PathJoinSubstitution([share, "config", "fastdds_shm.xml"]),
            description="Fast DDS profile for the node (FASTRTPS_DEFAULT_PROFILES_FILE for Humble and Jazzy, "
                        "FASTDDS_DEFAULT_PROFILES_FILE for Kilted: both are set); the default, shared memory "
                        "for large images, is what makes a best-effort camera stream arrive; 'none' = Fast DDS "
                        "defaults. The camera driver's process needs the same profile (docs/node.md)"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="start rviz2 showing input, overlay and colour of every camera"),
        DeclareLaunchArgument("rviz_template", default_value=PathJoinSubstitution([share, "config", "segment.rviz"]),
                              description="rviz2 configuration whose Displays are replaced per camera"),
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_launch_setup)])
