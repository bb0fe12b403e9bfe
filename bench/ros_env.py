"""The environment of every ROS process a benchmark starts: DDS discovery on localhost only, in a domain of its
own (the project's network-safety rule; the Makefile and test/isolation.py do the same for make and the tests).
"""
from __future__ import annotations

import os
import random


def localhost_env() -> dict[str, str]:
    """os.environ with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the caller's ROS_DOMAIN_ID (one of 101-200,
    drawn once per call, where the shell sets none)."""
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(random.randint(101, 200))))
