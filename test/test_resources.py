"""Shipped files found by name or path from any working directory: package data, checkout, ament share."""
from __future__ import annotations

from pathlib import Path

import pytest

from bisegunet_ros import resources
from bisegunet_ros.resources import SHIPPED_MODEL, ResourceError, find_resource, shipped

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind, name, expected", [
    ("preset", "small", "config/model/small.yaml"), ("preset", "tiny.yaml", "config/model/tiny.yaml"),
    ("preset", "config/model/paper.yaml", "config/model/paper.yaml"),
    ("train", "tiny_synthetic", "config/train/tiny_synthetic.yaml"),
    ("model", SHIPPED_MODEL, f"models/{SHIPPED_MODEL}.onnx"),
    ("model", f"{SHIPPED_MODEL}.int8", f"models/{SHIPPED_MODEL}.int8.onnx"),
])
def test_names_and_repository_paths_resolve_from_another_directory(tmp_path, monkeypatch, kind, name, expected):
    monkeypatch.chdir(tmp_path)
    assert find_resource(kind, name).resolve() == ROOT / expected


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").write_text("name: mine\n")
    assert find_resource("preset", "small") == Path("small")


def test_unknown_name_lists_what_is_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResourceError, match=r"smal: model preset file not found \(no such file, and no shipped "
                                            r"model preset of that name; shipped: fast, paper, small, tiny;"):
        find_resource("preset", "smal")
    assert {"tiny_synthetic", "ci"} <= set(shipped("train"))


def test_package_data_and_the_ament_share_directory_are_searched(tmp_path, monkeypatch):
    """A pip install's bisegunet_ros/share/ and a colcon install's share/bisegunet_ros/ (real ament_index_python)."""
    monkeypatch.chdir(tmp_path)
    package_data = tmp_path / "site" / "bisegunet_ros" / "share"
    (package_data / "config/model").mkdir(parents=True)
    (package_data / "config/model/from_wheel.yaml").write_text("name: w\n")
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/bisegunet_ros").touch()
    (prefix / "share/bisegunet_ros/config/model").mkdir(parents=True)
    (prefix / "share/bisegunet_ros/config/model/from_colcon.yaml").write_text("name: c\n")
    monkeypatch.setattr(resources, "PACKAGE_DATA", package_data)
    monkeypatch.setattr(resources, "CHECKOUT", tmp_path / "not_a_checkout")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert find_resource("preset", "from_wheel") == package_data / "config/model/from_wheel.yaml"
    assert find_resource("preset", "from_colcon") == prefix / "share/bisegunet_ros/config/model/from_colcon.yaml"
    with pytest.raises(ResourceError, match="small: .*shipped: from_colcon, from_wheel"):
        find_resource("preset", "small")
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    with pytest.raises(ResourceError, match="shipped: from_wheel;"):
        find_resource("preset", "from_colcon")
