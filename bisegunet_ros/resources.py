"""The package's shipped files (model presets, training configs, models), found wherever it is installed.

`find_resource` is the one lookup: a path that exists is taken as given; otherwise a name
(`small`, `tiny_synthetic`, `bisegunet_fast`) or a path relative to the repository
(`config/model/tiny.yaml`) is looked up, in order, in
1. the package data a pip install copies into `bisegunet_ros/share/` (setup.py),
2. the source checkout this module runs from (an editable install, or the repository itself),
3. the ament share directory `share/bisegunet_ros/` of a colcon install (ament_index_python).
So defaults such as `model: config/model/tiny.yaml` do not depend on the working directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "bisegunet_ros"
PACKAGE_DATA = Path(__file__).resolve().parent / "share"      # filled by setup.py's build_py
CHECKOUT = Path(__file__).resolve().parents[1]                  # a source checkout when package.xml is there
# The shipped model, the default of the launch file and the demo: models/<name>.onnx (FP32),
# .int8.onnx (TensorRT INT8), .int8-cpu.onnx (ONNX Runtime INT8), .packed.bin (1-bit weights) and
# .train.json (its training record, bench/shipped.py).
SHIPPED_MODEL = "bisegunet_fast"


@dataclass(frozen=True)
class Kind:
    noun: str            # for messages
    directory: str       # relative to a root
    suffix: str          # added to a bare name


KINDS = {
    "preset": Kind("model preset", "config/model", ".yaml"),
    "train": Kind("training config", "config/train", ".yaml"),
    "model": Kind("model", "models", ".onnx"),
}


class ResourceError(FileNotFoundError):
    """Neither an existing path nor a shipped name; the message lists what is shipped."""


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError):     # not registered, or AMENT_PREFIX_PATH unset
        return None


def roots() -> list[Path]:
    """Directories holding config/ and models/, in lookup order (only those that exist)."""
    candidates = [PACKAGE_DATA, CHECKOUT if (CHECKOUT / "package.xml").is_file() else None, _ament_share()]
    return [root for root in candidates if root is not None and root.is_dir()]


def shipped(kind: str) -> list[str]:
    """Names of the shipped files of `kind` (without suffix), from every root."""
    spec = KINDS[kind]
    return sorted({p.name.removesuffix(spec.suffix) for root in roots()
                   for p in (root / spec.directory).glob(f"*{spec.suffix}")})


def find_resource(kind: str, name_or_path: str | os.PathLike) -> Path:
    """The file for a shipped name of `kind` ("preset", "train", "model") or a path; ResourceError if none."""
    spec = KINDS[kind]
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    if not given.is_absolute() and str(name_or_path):
        for root in roots():
            for candidate in (root / given, root / spec.directory / given,
                              root / spec.directory / f"{given}{spec.suffix}"):
                if candidate.is_file():
                    return candidate
    raise ResourceError(f"{name_or_path}: {spec.noun} file not found (no such file, and no shipped {spec.noun} of "
                        f"that name; shipped: {', '.join(shipped(kind)) or 'none found'}; looked in "
                        f"{', '.join(map(str, roots()))})")
