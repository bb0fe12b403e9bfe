"""The environment every test process and its subprocesses run in, set before anything imports rclpy.

- DDS stays on loopback on every distribution: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (Iron and
  later) and ROS_LOCALHOST_ONLY=1 (Humble knows only this one; Kilted ignores it without a word).
- A domain of the run's own, never the shell's ROS_DOMAIN_ID: on the vehicle that is the running
  car's graph. `make test` chooses one and passes it as BISEGUNET_TEST_DOMAIN_ID; `colcon test` and
  plain pytest get a random one.
- ROS_PYTHON_CHECK_FIELDS=1: messages check their field types on assignment, as Humble's rclpy
  always does (Jazzy and later skip the check unless asked).
"""
from __future__ import annotations

import random
from collections.abc import MutableMapping

DOMAIN_VARIABLE = "BISEGUNET_TEST_DOMAIN_ID"
DOMAIN_RANGE = (1, 100)   # within ROS 2's safe 0-101, avoiding the default 0


def isolate(environ: MutableMapping[str, str]) -> None:
    """Force loopback-only DDS, the test domain and message field checks in `environ`."""
    environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    environ["ROS_LOCALHOST_ONLY"] = "1"
    environ["ROS_PYTHON_CHECK_FIELDS"] = "1"
    chosen = environ.get(DOMAIN_VARIABLE, "")
    if chosen and not (chosen.isdigit() and DOMAIN_RANGE[0] <= int(chosen) <= DOMAIN_RANGE[1]):
        raise ValueError(f"{DOMAIN_VARIABLE}={chosen!r}: give a ROS domain id from {DOMAIN_RANGE[0]} to "
                         f"{DOMAIN_RANGE[1]}, or leave it unset for a random one")
    environ["ROS_DOMAIN_ID"] = chosen or str(random.randint(*DOMAIN_RANGE))
