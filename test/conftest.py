"""Test fixtures shared by the whole suite.

DDS is confined to this machine and to a domain of this run's own, and message fields are type
checked, before anything can import rclpy, for this process and every subprocess (isolation.py).
"""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

from isolation import isolate

isolate(os.environ)

import pytest  # noqa: E402

# launch_pytest's plugin imports `launch`, whose logging module makes every logger created afterwards
# a LaunchLogger that does not propagate to the root logger, so caplog would see none of this
# package's log lines. Loggers made from here on (the package's modules) are plain loggers again;
# launch keeps its own, made at its import.
logging.setLoggerClass(logging.Logger)

from ros_process import RosProcess  # noqa: E402

DOUBLES = Path(__file__).parent / "doubles"   # contract test doubles of tensorrt and pycuda


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a minute; still part of make test")
    config.addinivalue_line("markers", "ros: starts an rclpy context")


@pytest.fixture
def ros_process():
    """Start Python ROS processes that are always stopped when the test ends.

    Usage: ``proc = ros_process([sys.executable, "-m", "mod"], wait_topics=["/x"])``.
    """
    started: list[RosProcess] = []

    def start(cmd: list[str], wait_topics: list[str] = (), timeout: float = 30.0, **kwargs) -> RosProcess:
        proc = RosProcess(cmd, **kwargs)
        started.append(proc)
        if wait_topics:
            proc.wait_for_topics(wait_topics, timeout)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def rclpy_node():
    """An rclpy context and node in the test process, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_{os.getpid()}_{random.randint(0, 1 << 30)}", context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def _forget_doubles() -> None:
    for name in list(sys.modules):
        if name in ("tensorrt", "pycuda", "simulated_gpu") or name.startswith("pycuda."):
            del sys.modules[name]


@pytest.fixture
def tensorrt_doubles(monkeypatch):
    """`tensorrt` and `pycuda` importable as their contract test doubles (test/doubles), for one test."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    for name in ("TENSORRT_DOUBLE_CONTROL", "TENSORRT_DOUBLE_LOG", "TENSORRT_DOUBLE_VERSION"):
        monkeypatch.delenv(name, raising=False)
    _forget_doubles()
    yield DOUBLES
    _forget_doubles()
