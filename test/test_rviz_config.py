"""The rviz2 configuration follows the launched cameras and the node's namespace."""
from __future__ import annotations

from pathlib import Path

import yaml

from bisegunet_ros.rviz_config import write_rviz_config

TEMPLATE = Path(__file__).resolve().parents[1] / "config" / "segment.rviz"


def _topics(tmp_path: Path, cameras: list[str], namespace: str = "") -> list[str]:
    config = yaml.safe_load(write_rviz_config(TEMPLATE, tmp_path / "out.rviz", cameras, namespace).read_text())
    assert config["Window Geometry"] == yaml.safe_load(TEMPLATE.read_text())["Window Geometry"]  # template kept
    return [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]]


def test_every_camera_gets_input_overlay_and_colour(tmp_path):
    assert _topics(tmp_path, ["front", "rear"]) == [
        "/front/image", "/front/segmentation/overlay", "/front/segmentation/color",
        "/rear/image", "/rear/segmentation/overlay", "/rear/segmentation/color"]


def test_topics_are_resolved_in_the_node_namespace_unless_absolute(tmp_path):
    assert _topics(tmp_path, ["front", "/cams/rear"], "/car1/") == [
        "/car1/front/image", "/car1/front/segmentation/overlay", "/car1/front/segmentation/color",
        "/cams/rear/image", "/cams/rear/segmentation/overlay", "/cams/rear/segmentation/color"]
    assert _topics(tmp_path, [""], "car1") == ["/car1/image", "/car1/segmentation/overlay",
                                               "/car1/segmentation/color"]
