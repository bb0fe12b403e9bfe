"""The Fast DDS profile reaches the node under the names every Fast DDS reads, and the node says which is in effect.

Fast DDS 2.x (Humble, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted) only
FASTDDS_DEFAULT_PROFILES_FILE: the launch file must set both (bisegunet_ros/dds_profile.py).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bisegunet_ros.dds_profile import VARIABLES, describe

ROOT = Path(__file__).resolve().parents[1]
FAST_DDS_2, FAST_DDS_3 = VARIABLES


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "profile.xml"
    path.write_text("<dds/>")
    return str(path)


def test_describe_names_the_file_in_effect_for_each_distribution(profile):
    both = {FAST_DDS_2: profile, FAST_DDS_3: profile}
    assert describe(both) == (True, f"DDS profile file: {profile} ({FAST_DDS_2} and {FAST_DDS_3})")
    assert describe({**both, "ROS_DISTRO": "humble"})[0]
    fine, line = describe({FAST_DDS_3: profile, "ROS_DISTRO": "humble"})
    assert not fine and f"reads {FAST_DDS_2}, which is unset; it ignores {FAST_DDS_3}" in line
    assert describe({FAST_DDS_3: profile, "ROS_DISTRO": "kilted"}) == (True, f"DDS profile file: {profile} "
                                                                             f"({FAST_DDS_3})")
    assert describe({}) == (True, f"DDS profile: none ({FAST_DDS_2} and {FAST_DDS_3} unset): Fast DDS defaults")
    fine, line = describe({**both, FAST_DDS_3: profile + ".other"})
    assert not fine and f"{FAST_DDS_2}={profile} is in effect" in line
    fine, line = describe({FAST_DDS_2: "/nonexistent.xml", FAST_DDS_3: "/nonexistent.xml"})
    assert not fine and "does not exist" in line
    assert "not Fast DDS" in describe({**both, "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})[1]


def _launch_node_environment(arguments: dict[str, str]) -> dict[str, str]:
    """Generate the launch description, declare its arguments, perform its OpaqueFunction as `ros2 launch`
    would, and return the environment the segmentation node's process would get."""
    pytest.importorskip("launch_ros", reason="the launch system is not installed (make setup installs it)")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("segment_launch", ROOT / "launch" / "segment.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    entities = module.generate_launch_description().entities
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument) and entity.name not in arguments:
            context.launch_configurations[entity.name] = perform_substitutions(context, entity.default_value or [])
    (setup,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    (node,) = [a for a in setup.execute(context) if isinstance(a, Node)]
    return {perform_substitutions(context, name): perform_substitutions(context, value)
            for name, value in node.process_description.additional_env}


def test_the_launch_file_sets_both_profile_variables_for_the_node(profile):
    params = str(ROOT / "config" / "segment.yaml")   # the launch file refuses a parameters file that is missing
    env = _launch_node_environment({"dds_profile": profile, "model": "m.onnx", "params_file": params,
                                    "rviz_template": "t.rviz"})
    assert {name: env.get(name) for name in VARIABLES} == {FAST_DDS_2: profile, FAST_DDS_3: profile}
    env = _launch_node_environment({"dds_profile": "none", "model": "m.onnx", "params_file": params,
                                    "rviz_template": "t.rviz"})
    assert not set(VARIABLES) & set(env)
