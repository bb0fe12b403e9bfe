"""What README and docs tell a vehicle team to run exists in both installs, and the vehicle's pip installs keep
apt's Python modules working (numpy below 2) and read zstd bags on Humble's Python 3.10."""
from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"\bbisegunet-[a-z][a-z-]*[a-z]")
ROS2_RUN = re.compile(r"ros2 run bisegunet_ros ([a-z_]+)")


def vehicle_shell_text() -> str:
    """The shell blocks of README's vehicle section and of docs/orin.md: what runs in a colcon install."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## On the vehicle"):]
    section = section[:section.index("\n## ", 1)]
    text = section + (ROOT / "docs" / "orin.md").read_text()
    return "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))


def setup_py_scripts() -> dict[str, str]:
    """console_scripts of setup.py: command -> "module:function"."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return dict(tuple(part.strip() for part in line.split("=")) for line in entry_points["console_scripts"])


def cmake_commands() -> dict[str, str]:
    """What CMakeLists.txt installs: command -> module path under bisegunet_ros/."""
    return {command: module for module, command in
            re.findall(r"([\w/]+)=(bisegunet-[\w-]+)", (ROOT / "CMakeLists.txt").read_text())}


def test_every_documented_command_is_a_console_script_of_the_pip_install():
    documented = {name for doc in DOCS for name in COMMAND.findall(doc.read_text())}
    scripts = setup_py_scripts()
    assert documented and documented <= set(scripts), f"named but not installed: {documented - set(scripts)}"
    from importlib.metadata import distribution

    installed = {e.name for e in distribution("bisegunet_ros").entry_points if e.group == "console_scripts"}
    assert installed == set(scripts), "the installed package is not this setup.py's: run `make setup`"


def test_colcon_installs_the_runtime_commands_under_the_pip_names():
    cmake, scripts = cmake_commands(), setup_py_scripts()
    assert cmake, "CMakeLists.txt names no commands"
    for command, module in cmake.items():
        assert scripts[command] == f"bisegunet_ros.{module.replace('/', '.')}:main", command
    named = set(COMMAND.findall(vehicle_shell_text()))
    assert named and named <= set(cmake), f"vehicle commands a colcon install lacks: {named - set(cmake)}"


def test_installed_prefix_has_every_command_the_docs_name():
    """The ament prefix (the venv after `make setup`, or a colcon install): lib/bisegunet_ros for `ros2 run`,
    bin/ for the bisegunet-* names (pip's console scripts in the venv, CMake's in a colcon install)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = Path(get_package_prefix("bisegunet_ros"))
    except PackageNotFoundError:
        pytest.skip("bisegunet_ros is not in the ament index (AMENT_PREFIX_PATH): run `make setup`")
    ros2_run = {name for doc in DOCS for name in ROS2_RUN.findall(doc.read_text())}
    assert ros2_run >= {"segment_node"}
    for name in ros2_run | {Path(module).name for module in cmake_commands().values()}:
        assert os.access(prefix / "lib" / "bisegunet_ros" / name, os.X_OK), name
    for command in cmake_commands():
        assert os.access(prefix / "bin" / command, os.X_OK), command


def test_vehicle_pip_installs_keep_numpy_below_2_and_bring_the_zstd_backport():
    pins = [Requirement(line) for line in (ROOT / "vehicle-constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    (numpy,) = [r for r in pins if r.name == "numpy"]
    assert "1.26.4" in numpy.specifier and "2.0.0" not in numpy.specifier
    installs = [line for line in vehicle_shell_text().splitlines() if re.match(r"\s*pip3? install", line)]
    assert installs and all("-c src/bisegunet_ros/vehicle-constraints.txt" in line for line in installs), installs
    assert any("backports.zstd" in line for line in installs)
    tree = ast.parse((ROOT / "setup.py").read_text())
    backport = Requirement(next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                                and getattr(n.targets[0], "id", "") == "ZSTD_BACKPORT").value)
    assert backport.name == "backports.zstd"
    assert backport.marker.evaluate({"python_version": "3.10"}) and not backport.marker.evaluate({"python_version": "3.14"})


def test_reading_zstd_without_the_backport_names_the_package(monkeypatch):
    from bisegunet_ros.evaluation.bag_io import BagError, zstd_module

    for name in ("compression", "compression.zstd", "backports", "backports.zstd"):
        monkeypatch.setitem(sys.modules, name, None)   # importing it raises ImportError
    with pytest.raises(BagError, match=r"'backports.zstd' is not installed.*pip install backports.zstd"):
        zstd_module()
