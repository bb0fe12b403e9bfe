"""A normal (non-editable) pip install, used from another directory: presets, configs and the shipped
model are found in the installed package, and the command-line tools work."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bisegunet_ros.resources import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("../" + "shared", "/work/" + "shared")     # spelled apart so that this file does not match itself
NOT_SOURCES = shutil.ignore_patterns(".venv", ".git", "build", "runs", "reports", "__pycache__", "*.egg-info",
                                     ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(directory of the console scripts, environment) of the package installed into a fresh --target."""
    tmp = tmp_path_factory.mktemp("install")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_SOURCES)     # pip builds in the tree it installs from
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp / "site"), str(tmp / "src")], check=True, capture_output=True, text=True)
    shutil.rmtree(tmp / "src")                                  # nothing of the sources left to fall back on
    env = dict(os.environ, PYTHONPATH=str(tmp / "site"))
    env.pop("AMENT_PREFIX_PATH", None)
    return tmp / "site", env


def run(site: Path, env: dict, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def test_installed_package_finds_its_files_from_any_directory(installed, tmp_path):
    site, env = installed
    probe = ("import bisegunet_ros, bisegunet_training\n"
             "from bisegunet_ros.resources import find_resource\n"
             "from bisegunet_training.model import ModelConfig, load_model_config\n"
             "assert load_model_config('small') == ModelConfig()\n"
             "assert load_model_config('config/model/tiny.yaml').name == 'tiny'\n"
             f"for kind, name in (('preset', 'paper'), ('train', 'tiny_synthetic'), ('model', '{SHIPPED_MODEL}')):\n"
             "    print(find_resource(kind, name))\n"
             "print(bisegunet_ros.__file__, bisegunet_training.__file__)\n")
    printed = run(site, env, tmp_path, sys.executable, "-c", probe).stdout.split()
    assert len(printed) == 5 and all(p.startswith(str(site)) for p in printed), printed


def test_installed_command_line_tools_run_from_another_directory(installed, tmp_path):
    site, env = installed
    scripts = site / "bin"
    tools = [s for s in sorted(scripts.iterdir()) if s.name != "bisegunet-segment-node"]  # a ROS node: test_cli.py
    with ThreadPoolExecutor(2) as pool:                  # two processes at a time
        helps = list(pool.map(lambda script: run(site, env, tmp_path, str(script), "--help").stdout, tools))
        profiled = pool.submit(run, site, env, tmp_path, str(scripts / "bisegunet-profile"), "--model", "tiny",
                               "--size", "64", "128")
        run(site, env, tmp_path, str(scripts / "bisegunet-make-bag"), "bag", "--frames", "2", "--height", "64",
            "--width", "128")
        printed = run(site, env, tmp_path, str(scripts / "bisegunet-eval-bag"), "bag", "--model", "bisegunet_tiny",
                      "--backend", "onnxruntime").stdout
    assert len(helps) > 1 and all("usage:" in text for text in helps)
    assert "frames evaluated: 2" in printed and (tmp_path / "reports/bag/report.json").is_file()
    assert profiled.result().stdout.startswith("tiny at 64x128")


def test_no_file_refers_to_paths_outside_the_repository():
    """Facts are stated where they are used: a clone elsewhere has nothing beside the repository to point at.
    (The Makefile's optional wheel directory for `ros2 launch` is the one exception: docs/install.md.)"""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "Makefile" or not path.is_file() or path.suffix in (".onnx", ".npz", ".png", ".json"):
            continue                                  # .json: benchmark records, which name where they ran
        text = path.read_text(errors="ignore")
        offenders += [f"{name}: {marker}" for marker in OUTSIDE if marker in text]
    assert not offenders, offenders
