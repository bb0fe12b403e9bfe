"""rviz2 configuration for the cameras a launch actually started (no ROS imports).

config/segment.rviz is the template (window, global options, tools); its Displays are replaced by
three Image displays per camera: the camera's input, the node's overlay and its class colours, on
the topics the node subscribes and advertises in its namespace.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .topics import camera_topic, resolve_topic

# (display name, topic relative to the camera namespace, reliability the publisher offers)
CAMERA_DISPLAYS = (
    ("input", "image", "Best Effort"),                  # camera drivers publish best effort
    ("overlay", "segmentation/overlay", "Reliable"),
    ("colour", "segmentation/color", "Reliable"),
)


def image_display(name: str, topic: str, reliability: str) -> dict:
    return {
        "Class": "rviz_default_plugins/Image", "Enabled": True, "Name": name, "Normalize Range": False,
        "Topic": {"Depth": 2, "Durability Policy": "Volatile", "History Policy": "Keep Last",
                  "Reliability Policy": reliability, "Value": topic},
        "Value": True,
    }


def rviz_config(template: dict, cameras: list[str], node_namespace: str = "") -> dict:
    """`template` with its Displays replaced by input, overlay and colour of every camera."""
    config = yaml.safe_load(yaml.safe_dump(template))  # deep copy, plain types only
    displays = [image_display(f"{camera or '/'} {label}", resolve_topic(node_namespace, camera_topic(camera, topic)), reliability)
                for camera in cameras for label, topic, reliability in CAMERA_DISPLAYS]
    config.setdefault("Visualization Manager", {})["Displays"] = displays
    return config


def write_rviz_config(template_path: str | Path, out_path: str | Path, cameras: list[str],
                      node_namespace: str = "") -> Path:
    """Write the configuration for `cameras` to `out_path`; returns it."""
    template = yaml.safe_load(Path(template_path).read_text())
    out = Path(out_path)
    out.write_text(yaml.safe_dump(rviz_config(template, cameras, node_namespace), sort_keys=False))
    return out
