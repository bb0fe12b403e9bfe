"""Every test process and its subprocesses: loopback-only DDS on every distribution, the run's own domain,
message field checks (isolation.py, applied by conftest before rclpy is imported)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from isolation import DOMAIN_VARIABLE, isolate

VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "ROS_DOMAIN_ID", "ROS_PYTHON_CHECK_FIELDS")


def test_the_shells_domain_is_never_kept():
    shell = {"ROS_DOMAIN_ID": "0", "ROS_LOCALHOST_ONLY": "0", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    isolate(shell)
    assert shell["ROS_DOMAIN_ID"] != "0" and 1 <= int(shell["ROS_DOMAIN_ID"]) <= 100
    assert shell["ROS_LOCALHOST_ONLY"] == "1" and shell["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    chosen = {"ROS_DOMAIN_ID": "0", DOMAIN_VARIABLE: "42"}
    isolate(chosen)
    assert chosen["ROS_DOMAIN_ID"] == "42" and chosen["ROS_PYTHON_CHECK_FIELDS"] == "1"
    with pytest.raises(ValueError, match=f"{DOMAIN_VARIABLE}='car'"):
        isolate({DOMAIN_VARIABLE: "car"})


def test_subprocesses_inherit_the_isolation():
    probe = f"import json, os; print(json.dumps({{n: os.environ.get(n) for n in {VARIABLES!r}}}))"
    seen = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                     check=True).stdout)
    assert seen == {name: os.environ[name] for name in VARIABLES}
    assert seen["ROS_LOCALHOST_ONLY"] == "1" and seen["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    if os.environ.get(DOMAIN_VARIABLE):
        assert seen["ROS_DOMAIN_ID"] == os.environ[DOMAIN_VARIABLE]


@pytest.mark.ros
def test_rclpy_starts_cleanly_with_both_loopback_variables_and_checks_fields():
    """Kilted ignores ROS_LOCALHOST_ONLY; it must neither fail nor complain when both are set."""
    probe = ("import rclpy\n"
             "from std_msgs.msg import Header\n"
             "rclpy.init()\n"
             "node = rclpy.create_node('isolation_probe')\n"
             "node.create_publisher(Header, 'isolation_probe', 1).publish(Header(frame_id='x'))\n"
             "try:\n"
             "    Header(frame_id=3)\n"
             "except AssertionError:\n"
             "    print('fields checked')\n"
             "node.destroy_node()\n"
             "rclpy.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fields checked"
    assert "error" not in done.stderr.lower() and "localhost" not in done.stderr.lower(), done.stderr
