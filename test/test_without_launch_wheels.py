"""A clone with nothing beside it (no launch wheels): the suite still collects, and the launch tests skip
with their reason instead of failing at collection (test/without_launch_wheels.py hides the wheels)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_the_launch_tests_skip_with_their_reason_without_the_launch_wheels():
    done = subprocess.run([sys.executable, str(HERE / "without_launch_wheels.py"), str(HERE / "test_launch.py"),
                           str(HERE / "test_node_stats.py"),
                           "-q", "-p", "no:cacheprovider"], cwd=HERE.parent, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "SKIPPED" in out and "the launch system is not installed" in out, out
