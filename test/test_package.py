"""The package as a ROS 2 package: package.xml is honest, and an ament build installs a working tree."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
WHEELS_FIX = ROOT / "cmake" / "pypi_wheels_fix.cmake"  # the venv world's fixes for PyPI's ROS wheels

# Imports of the runtime that map to a rosdep key declared in package.xml.
ROSDEP_KEYS = {
    "rclpy": "rclpy", "sensor_msgs": "sensor_msgs", "std_msgs": "std_msgs",
    "diagnostic_msgs": "diagnostic_msgs", "builtin_interfaces": "builtin_interfaces",
    "rosidl_runtime_py": "rosidl_default_runtime", "ament_index_python": "ament_index_python",
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "cv_bridge": "cv_bridge",
    "launch": "launch", "launch_ros": "launch_ros", "launch_pytest": "launch_pytest",
    "rcl_interfaces": "rcl_interfaces", "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm",
}
# Imports with no rosdep key, installed with pip or JetPack as README.md says.
PIP_OR_JETPACK = {"onnxruntime", "onnx", "rosbags", "tensorrt", "pycuda",
                  "lz4", "backports", "compression"}  # the last three come with rosbags (zstd: stdlib from 3.14)


def _imported_top_levels(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"bisegunet_ros", "__future__"}


def test_package_xml_declares_every_runtime_import():
    package = parse_package(str(ROOT / "package.xml"))
    assert package.package_format == 3
    assert package.get_build_type() == "ament_cmake"
    declared = {d.name for d in package.build_depends + package.exec_depends + package.test_depends
                + package.buildtool_depends + package.build_export_depends}
    assert "rosidl_interface_packages" in {g.name for g in package.member_of_groups}
    sources = [p for p in (ROOT / "bisegunet_ros").rglob("*.py") if "msg" not in p.relative_to(ROOT).parts]
    sources += list((ROOT / "launch").glob("*.py"))
    imported = _imported_top_levels(sources)
    assert "torch" not in imported, "the runtime must not import torch"
    unknown = imported - ROSDEP_KEYS.keys() - PIP_OR_JETPACK
    assert not unknown, f"imports with no known dependency: {unknown}"
    missing = {ROSDEP_KEYS[m] for m in imported & ROSDEP_KEYS.keys()} - declared
    assert not missing, f"imported but not declared in package.xml: {missing}"


@pytest.mark.slow
def test_ament_build_installs_an_importable_tree(tmp_path):
    """cmake against the venv's ROS wheels, as colcon would, into a fresh prefix."""
    venv = Path(sys.prefix)
    prefix = tmp_path / "install"
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
               PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    for cmd in (["cmake", "-S", str(ROOT), "-B", str(tmp_path / "build"), "-G", "Ninja",
                 f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}",
                 "-DBUILD_TESTING=OFF", f"-DCMAKE_PROJECT_INCLUDE={WHEELS_FIX}"],
                ["cmake", "--build", str(tmp_path / "build")],
                ["cmake", "--install", str(tmp_path / "build")]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    site = prefix / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    assert (prefix / "share/bisegunet_ros/launch").is_dir()
    assert (prefix / "share/bisegunet_ros/config").is_dir()
    executables = list((prefix / "lib/bisegunet_ros").iterdir())
    assert executables and all(os.access(e, os.X_OK) for e in executables)
    assert "from bisegunet_ros.evaluation.evaluate_bag import main" in (
        prefix / "lib/bisegunet_ros/evaluate_bag").read_text()
    commands = ("bisegunet-segment-node", "bisegunet-eval-bag", "bisegunet-build-engine")  # setup.py's names
    assert all(os.access(prefix / "bin" / c, os.X_OK) for c in commands), sorted(os.listdir(prefix / "bin"))

    probe = ("import bisegunet_ros, bisegunet_ros.classes\n"
             "from bisegunet_ros.msg import ClassMasks, SegmentationInfo\n"
             "from rclpy.serialization import serialize_message as s\n"
             "s(ClassMasks()); s(SegmentationInfo())\n"
             "import bisegunet_ros.evaluation.evaluate_bag\n"
             "from bisegunet_ros.resources import find_resource\n"
             f"print(find_resource('preset', 'small'), find_resource('model', '{SHIPPED_MODEL}'))\n"
             "print(bisegunet_ros.__file__)\n")
    run_env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(prefix),
                   LD_LIBRARY_PATH=f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    result = subprocess.run([sys.executable, "-c", probe], env=run_env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    usage = subprocess.run([sys.executable, str(prefix / "bin" / "bisegunet-eval-bag"), "--help"], env=run_env,
                           cwd=tmp_path, capture_output=True, text=True)
    assert usage.returncode == 0 and "usage:" in usage.stdout, usage.stderr
    found, imported = result.stdout.strip().splitlines()
    assert imported.startswith(str(site)), "imported the source tree, not the installed one"
    share = prefix / "share/bisegunet_ros"      # found through ament_index_python, as on a ROS install
    assert found.split() == [str(share / "config/model/small.yaml"), str(share / "models" / f"{SHIPPED_MODEL}.onnx")]


@pytest.mark.slow
def test_cmake_configures_where_rosidl_leaves_the_generated_target_without_include_dirs(tmp_path):
    """Humble and Jazzy: no INTERFACE_INCLUDE_DIRECTORIES on <pkg>__rosidl_generator_py; nothing may read
    it back as `_dirs-NOTFOUND` (a relative path that fails the generate step). The vehicle's CMakeLists
    reads no property of rosidl's targets at all; the venv world's fix must cope with the unset case."""
    assert "get_target_property" not in (ROOT / "CMakeLists.txt").read_text()
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
               PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    build = tmp_path / "build"
    result = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", f"-DPython3_EXECUTABLE={sys.executable}",
         "-DBUILD_TESTING=OFF", f"-DCMAKE_PROJECT_INCLUDE={WHEELS_FIX}",
         f"-DCMAKE_PROJECT_INCLUDE_BEFORE={ROOT / 'test' / 'cmake' / 'humble_generator_py_target.cmake'}"],
        env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "NOTFOUND" not in output, output[-3000:]
    exports = list(build.rglob("*bisegunet_ros__rosidl_generator_pyExport*.cmake"))
    assert exports and not any("INTERFACE_INCLUDE_DIRECTORIES" in e.read_text() for e in exports), \
        "the generated target still had include directories: the Humble case was not simulated"
