"""Run pytest as a checkout without the launch wheels sees the suite (a clone with nothing beside it).

The ROS 2 launch system, the `ros2` command's packages and what `make setup` installs with them
(docs/install.md) cannot be imported in this process, and their pytest plugins are not loaded, so
a venv that has them can check that the suite still collects and that the launch tests skip with
their reason: `.ci/run` runs `python test/without_launch_wheels.py --collect-only -q`, and
test/test_without_launch_wheels.py the launch tests.

    python test/without_launch_wheels.py [pytest arguments]
"""
from __future__ import annotations

import importlib.abc
import os
import sys

import pytest

# Top-level modules of the wheels in the Makefile's ROS2_PYTHON and of what is installed with them.
LAUNCH_WHEELS = ("launch", "launch_pytest", "launch_ros", "launch_testing", "launch_testing_ros",
                 "launch_testing_ros_pytest_entrypoint", "launch_xml", "launch_yaml", "ros2action", "ros2cli",
                 "ros2interface", "ros2launch", "ros2node", "ros2param", "ros2pkg", "ros2run", "ros2service",
                 "ros2topic", "rosidl_runtime_py", "composition_interfaces", "osrf_pycommon", "lark", "psutil")
PLUGINS = ("launch_pytest", "launch_testing", "launch_ros")   # their pytest11 entry points


class HideLaunchWheels(importlib.abc.MetaPathFinder):
    """An import of any of LAUNCH_WHEELS fails as if it were not installed."""

    def find_spec(self, name: str, path=None, target=None):
        if name.partition(".")[0] in LAUNCH_WHEELS:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by {__file__})", name=name)
        return None


def main(args: list[str]) -> int:
    sys.path[0] = os.getcwd()   # as `python -m pytest` has it: the checkout first on the path, not test/
    sys.meta_path.insert(0, HideLaunchWheels())
    return pytest.main([arg for plugin in PLUGINS for arg in ("-p", f"no:{plugin}")] + args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
