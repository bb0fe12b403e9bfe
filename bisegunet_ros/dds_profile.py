"""Which Fast DDS XML profile file a process loads, under the variable names Fast DDS reads.

Fast DDS 2.x (ROS 2 Humble: 2.6, Jazzy: 2.14) reads only FASTRTPS_DEFAULT_PROFILES_FILE; the
name FASTDDS_DEFAULT_PROFILES_FILE came with Fast DDS 3 (Kilted). Setting one name only loses the
profile on the other distributions without any error, so the launch file sets both
(`profile_environment`) and the node logs at start which file is in effect (`describe`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

LEGACY_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"   # Fast DDS 2.x: Humble, Iron, Jazzy
VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"           # Fast DDS 3: Kilted and later
VARIABLES = (LEGACY_VARIABLE, VARIABLE)
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")   # ROS_DISTRO of the distributions that ship Fast DDS 2
FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")  # "" = the default RMW, Fast DDS


def profile_environment(path: str) -> dict[str, str]:
    """The environment that makes every Fast DDS version load the profile file `path`."""
    return {name: path for name in VARIABLES}


def describe(environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """(fine, one line) saying which DDS profile file this process loads; fine is False when the line is a
    warning (a name the running Fast DDS ignores, differing files, a missing file).

    Fast DDS 2 reads only the legacy name; Kilted's rmw_fastrtps reads both and, when both are set, uses the
    legacy one (measured: it logs that the deprecated FASTRTPS_DEFAULT_PROFILES_FILE "is used").
    """
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw not in FAST_DDS_RMWS:
        return True, f"DDS profile: none loaded by this process (RMW {rmw} is not Fast DDS)"
    legacy, current = environ.get(LEGACY_VARIABLE), environ.get(VARIABLE)
    distro = environ.get("ROS_DISTRO", "").lower()
    if not legacy and not current:
        return True, f"DDS profile: none ({LEGACY_VARIABLE} and {VARIABLE} unset): Fast DDS defaults"
    if not legacy and distro in FAST_DDS_2_DISTROS:
        return False, (f"DDS profile: none in effect: the Fast DDS of ROS {distro} reads {LEGACY_VARIABLE}, which "
                       f"is unset; it ignores {VARIABLE}={current}")
    if legacy and current and legacy != current:
        return False, (f"DDS profile: {LEGACY_VARIABLE}={legacy} is in effect, not {VARIABLE}={current}: set both "
                       "to the same file")
    path = legacy or current
    names = " and ".join(name for name, value in ((LEGACY_VARIABLE, legacy), (VARIABLE, current)) if value)
    if not os.path.isfile(path):
        return False, f"DDS profile file {path} ({names}) does not exist: Fast DDS falls back to its defaults"
    return True, f"DDS profile file: {path} ({names})"
