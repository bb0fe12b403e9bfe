"""segment.launch.py for real: launch_pytest starts it once with two cameras (and a third for a camera
driver's stream), then `ros2 launch` in a process group of its own is stopped the way a terminal's
Ctrl-C stops it, and fails on a bad model.

The launch system is not on PyPI: `make setup` installs it from the wheels folder the Makefile's
ROS2_PYTHON names when that folder exists, with this package in the venv as an ament prefix.
Elsewhere this file skips with that reason.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="the launch system is not installed: `make setup` installs it from "
                            "the Makefile's ROS2_PYTHON wheels (absent here), a ROS 2 install has it")
import psutil  # noqa: E402  (the launch system's dependency: installed with it)

# Launched nodes and `ros2` find the package through the venv as an ament prefix, and their
# `#!/usr/bin/env python3` must be this venv's Python.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

from ament_index_python.packages import (  # noqa: E402
    PackageNotFoundError, get_package_prefix, get_package_share_directory)

from bisegunet_ros.resources import SHIPPED_MODEL  # noqa: E402

try:
    SHARE = Path(get_package_share_directory("bisegunet_ros"))
except PackageNotFoundError:
    pytest.skip("bisegunet_ros is not in the ament index (AMENT_PREFIX_PATH): run `make setup`",
                allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bisegunet_ros.dds_profile import profile_environment  # noqa: E402
from bisegunet_ros.msg import SegmentationInfo  # noqa: E402
from bisegunet_ros.rviz_config import write_rviz_config  # noqa: E402
from ros_client import RosClient  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = SHARE / "launch" / "segment.launch.py"
CAMERAS = ["front", "rear"]
DRIVER_CAMERA = "driver"  # only the camera-stream test uses it: no output subscribers, so nothing but transport
LAUNCHED = [*CAMERAS, DRIVER_CAMERA]
NODE = "/segment_node"
# Values that only the params file given to the launch sets (the installed config/segment.yaml differs).
PARAMS_FILE = Path(tempfile.mkdtemp()) / "params.yaml"
PARAMS_FILE.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"overlay_alpha": 0.25, "stale_timeout": 30.0}}}))
STREAM = {"frames": 50, "rate": 10.0, "width": 1024, "height": 512}


@launch_pytest.fixture(scope="module")
def segment_launch():
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments={
            "cameras": f"[{', '.join(LAUNCHED)}]", "backend": "onnxruntime", "output_resolution": "network",
            "params_file": str(PARAMS_FILE)}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.fixture(scope="module")
def client():
    client = RosClient("launch_test_client")
    assert client.spin_until(lambda: NODE in _node_names(client), timeout=60), "the launched node never appeared"
    yield client
    client.close()


def _node_names(client: RosClient) -> set[str]:
    return {f"{ns.rstrip('/')}/{name}" for name, ns in client.node.get_node_names_and_namespaces()}


def _frame(camera: str) -> Image:
    frame = Image(height=32, width=64, encoding="rgb8", step=192, data=np.zeros((32, 192), np.uint8).tobytes())
    frame.header.frame_id = camera
    return frame


@pytest.mark.launch(fixture=segment_launch)
def test_each_camera_gets_labels_with_its_frame_stamp_from_the_launch_arguments(client):
    for camera in CAMERAS:
        labels = client.subscribe(f"/{camera}/segmentation/label", Image)
        infos = client.subscribe(f"/{camera}/segmentation/info", SegmentationInfo)
        frame = _frame(camera)
        reply = client.request(f"/{camera}/image", frame, labels, timeout=60)
        assert reply is not None, f"no label on /{camera}/segmentation/label"
        assert reply.header.stamp == frame.header.stamp and reply.header.frame_id == camera
        # output_resolution:=network: the label has the network's size, not the 64x32 input's
        assert client.spin_until(lambda: infos, timeout=20)
        info = infos[-1]
        assert (reply.width, reply.height) == (info.network_width, info.network_height) != (64, 32)
        assert info.backend.startswith("onnxruntime")  # backend:=onnxruntime (the file says auto)
        assert info.model_name and info.frames_processed >= 1


@pytest.mark.launch(fixture=segment_launch)
def test_the_params_file_and_the_arguments_reach_the_node(client):
    service = client.node.create_client(GetParameters, f"{NODE}/get_parameters")
    assert service.wait_for_service(timeout_sec=30)
    future = service.call_async(GetParameters.Request(
        names=["overlay_alpha", "stale_timeout", "backend", "output_resolution", "cameras", "model_path"]))
    assert client.spin_until(future.done, timeout=30)
    alpha, stale, backend, resolution, cameras, model = future.result().values
    assert (alpha.double_value, stale.double_value) == (0.25, 30.0)
    assert (backend.string_value, resolution.string_value) == ("onnxruntime", "network")
    assert list(cameras.string_array_value) == LAUNCHED
    assert model.string_value == str(SHARE / "models" / f"{SHIPPED_MODEL}.onnx")  # the shipped model


@pytest.mark.launch(fixture=segment_launch)
def test_the_generated_rviz_config_shows_topics_the_node_has(client, tmp_path):
    config = yaml.safe_load(write_rviz_config(SHARE / "config" / "segment.rviz", tmp_path / "segment.rviz",
                                              LAUNCHED).read_text())
    displays = config["Visualization Manager"]["Displays"]
    assert len(displays) == 3 * len(LAUNCHED)
    topics = {}
    for names_and_types in (client.node.get_publisher_names_and_types_by_node("segment_node", "/"),
                            client.node.get_subscriber_names_and_types_by_node("segment_node", "/")):
        topics.update({name: types for name, types in names_and_types})
    for display in displays:
        assert display["Class"] == "rviz_default_plugins/Image"
        assert topics.get(display["Topic"]["Value"]) == ["sensor_msgs/msg/Image"], display["Topic"]["Value"]
    assert {d["Topic"]["Value"] for d in displays} >= {"/front/segmentation/overlay", "/rear/image"}


@pytest.mark.launch(fixture=segment_launch)
def test_a_best_effort_camera_stream_reaches_the_node(client):
    """A driver with the launch file's shared-memory profile, 1024x512 rgb8 at 10 Hz: >= 95 % arrive."""
    diagnostics = client.subscribe("/diagnostics", DiagnosticArray)

    def driver_camera() -> dict | None:
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name.endswith(f": {DRIVER_CAMERA}"):
                    return {v.key: v.value for v in status.values}
        return None

    assert client.spin_until(lambda: driver_camera() is not None, timeout=20)
    before = int(driver_camera()["received"])
    env = dict(os.environ, **profile_environment(str(SHARE / "config" / "fastdds_shm.xml")))
    driver = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "camera_driver.py"), f"/{DRIVER_CAMERA}/image",
         *[f"--{k}={v}" for k, v in STREAM.items()]], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        assert client.spin_until(lambda: driver.poll() is not None, timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 0, driver.stdout.read()
    # the first diagnostics that count every frame (they come at 1 Hz), else the last within 15 s
    client.spin_until(lambda: int(driver_camera()["received"]) - before >= STREAM["frames"], timeout=15)
    values = driver_camera()
    assert int(values["received"]) - before >= 0.95 * STREAM["frames"], values
    assert float(values["stamped_hz"]) == pytest.approx(STREAM["rate"], rel=0.05), values
    assert float(values["missing_percent"]) <= 5.0, values


@pytest.mark.skipif(SHARE.parents[1] != Path(sys.prefix), reason="a colcon install: its own installed copy")
def test_the_venv_prefix_runs_the_checkouts_code():
    """One bisegunet_ros in the venv world: lib/ executables import the editable package, no copy in the prefix."""
    executable = SHARE.parents[1] / "lib" / "bisegunet_ros" / "segment_node"
    assert executable.read_text().startswith("#!/usr/bin/env python3")
    python3 = shutil.which("python3")  # what the shebang finds with the venv's bin/ first on PATH
    found = subprocess.run([python3, "-c", "import bisegunet_ros.segment_node as m; print(m.__file__)"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert Path(found.stdout.strip()) == ROOT / "bisegunet_ros" / "segment_node.py", found.stderr
    assert not list(Path(sys.prefix).glob("lib/python3*/site-packages/bisegunet_ros/"))


def _ros2_launch(*arguments: str) -> subprocess.Popen:
    """`ros2 launch` in a process group of its own, as a terminal runs a foreground command."""
    return subprocess.Popen(["ros2", "launch", "bisegunet_ros", "segment.launch.py", *arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for process in psutil.process_iter():   # the session: launch may run in a process group of its own
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getsid(process.pid) == proc.pid:
                    process.kill()
        out, _ = proc.communicate()
        pytest.fail(f"ros2 launch did not end within {timeout} s:\n{out}")
    return out


def test_ctrl_c_to_the_process_group_stops_launch_and_node_cleanly():
    """The node gets SIGINT twice (the group's, then launch's), or more, and still exits 0 without a traceback."""
    proc = _ros2_launch("cameras:=[sigint]", "namespace:=sigint", "backend:=onnxruntime")
    client = RosClient("sigint_test_client")
    try:
        assert client.spin_until(lambda: "/sigint" + NODE in _node_names(client) or proc.poll() is not None,
                                 timeout=60)
        assert proc.poll() is None, _finish(proc, 10)
        time.sleep(1.0)  # past the node's start, into spin()
        node = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        for _ in range(25):  # and more SIGINTs while the node shuts down, whatever their timing
            time.sleep(0.02)
            for process in node:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGINT)
        out = _finish(proc, 60)
    finally:
        client.close()
    assert proc.returncode == 0, out
    assert "process has finished cleanly" in out, out
    assert "Traceback" not in out and "exit code" not in out, out


def test_a_missing_model_ends_the_launch_with_a_clear_error():
    proc = _ros2_launch("model:=/nonexistent/model.onnx", "backend:=onnxruntime")
    out = _finish(proc, 60)
    assert proc.returncode != 0, out
    assert "/nonexistent/model.onnx: model file not found" in out, out
    assert "Traceback" not in out, out


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_launch_passes_a_list_argument_and_stops_on_ctrl_c():
    """`make launch LAUNCH_ARGS='cameras:=[...]'` as a terminal runs it: an argument with a space in it
    arrives whole, and Ctrl-C to make's process group stops launch and node cleanly."""
    proc = subprocess.Popen(["make", "--no-print-directory", "launch",
                             "LAUNCH_ARGS=cameras:=[one, two] namespace:=make backend:=onnxruntime"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    client = RosClient("make_launch_test_client")
    try:
        assert client.spin_until(lambda: "/make" + NODE in _node_names(client) or proc.poll() is not None,
                                 timeout=120)
        assert proc.poll() is None, _finish(proc, 10)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        out = _finish(proc, 60)
    finally:
        client.close()
    assert "cameras ['one', 'two']" in out, out
    assert "process has finished cleanly" in out and "Traceback" not in out, out


def test_use_rviz_without_rviz2_starts_nothing():
    try:
        get_package_prefix("rviz2")
        pytest.skip("rviz2 is installed here")
    except PackageNotFoundError:
        pass
    proc = _ros2_launch("use_rviz:=true", "backend:=onnxruntime")
    out = _finish(proc, 60)
    assert proc.returncode != 0 and "use_rviz:=true needs rviz2" in out, out
    assert "process started" not in out, out   # the node was never started, so nothing is left running


@pytest.mark.parametrize("argument", ["params_file:=/nonexistent.yaml", "dds_profile:=/nonexistent.xml"])
def test_a_missing_file_argument_ends_the_launch_before_anything_starts(argument):
    proc = _ros2_launch(argument)
    out = _finish(proc, 60)
    assert proc.returncode != 0 and f"{argument}: no such file" in out, out
    assert "process started" not in out and "Traceback" not in out, out


@pytest.mark.skipif(not (ROOT / ".venv").is_dir(),
                    reason="the venv world only (make setup); a colcon install has install/setup.bash")
def test_venv_setup_gives_a_plain_shell_ros2_run_and_the_package():
    """`source venv_setup.bash` in a shell with nothing set: `ros2 pkg prefix` finds the venv, and
    `ros2 run` the node."""
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "ROS_DOMAIN_ID": os.environ["ROS_DOMAIN_ID"]}
    script = ("source venv_setup.bash && ros2 pkg prefix bisegunet_ros && "
              "ros2 run bisegunet_ros segment_node --ros-args -p model_path:=/nonexistent/model.onnx")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}" in out and f"\n{ROOT / '.venv'}\n" in out, out
    assert "/nonexistent/model.onnx: model file not found" in out, out   # the node itself ran, and refused


def _make_launch(namespace: str, script: str = "exec {make}") -> subprocess.Popen:
    make = (f"make --no-print-directory launch 'LAUNCH_ARGS=namespace:={namespace} backend:=onnxruntime'")
    return subprocess.Popen(["bash", "-c", script.format(make=make)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for_node(proc: subprocess.Popen, namespace: str) -> None:
    client = RosClient(f"{namespace}_test_client")
    try:
        assert client.spin_until(lambda: f"/{namespace}{NODE}" in _node_names(client) or proc.poll() is not None,
                                 timeout=120)
    finally:
        client.close()
    assert proc.poll() is None, _finish(proc, 10)
    time.sleep(1.0)  # past the node's start, into spin()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_launch_in_the_background_of_a_script_stops_on_ctrl_c_and_prints_its_domain():
    """A script's background job inherits SIGINT ignored; Ctrl-C to the script's group still stops launch."""
    proc = _make_launch("background", "{make} & wait")
    _wait_for_node(proc, "background")
    os.killpg(proc.pid, signal.SIGINT)
    out = _finish(proc, 60)   # returns once every process that shares the output is gone
    assert "process has finished cleanly" in out and "Traceback" not in out, out
    assert f"export ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']};" in out, out


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_launch_stops_cleanly_on_sigterm():
    proc = _make_launch("sigterm")
    _wait_for_node(proc, "sigterm")
    proc.terminate()   # make alone: it passes SIGTERM to the recipe
    out = _finish(proc, 60)
    assert "process has finished cleanly" in out and "Traceback" not in out, out
