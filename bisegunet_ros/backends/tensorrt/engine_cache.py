"""Which TensorRT engine may run, and where engines live.

An engine is only valid for the TensorRT version and GPU that built it, for the exact ONNX it
came from, and for its optimization profile and builder settings. Each engine gets a JSON sidecar
with that key and the engine file's size and SHA-256; the runtime reuses an engine only when the
sidecar matches what is running now and the file is the one recorded, otherwise it rebuilds from
the ONNX (a truncated or corrupt file with a warning) or fails naming both files and the mismatch.
It never runs a stale engine. Engines, timing caches and sidecars are written to a temporary file
in the same directory and renamed over the old one, so a build killed midway leaves the previous
file or none, never half of one. Engines live in a cache directory (default `$ROS_HOME/bisegunet_engines`, ROS_HOME
being `~/.ros` when unset), never next to the model: on a colcon install the model sits in a
read-only `share/`. Plain Python: the logic is tested on machines without TensorRT.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
CACHE_SUBDIR = "bisegunet_engines"


class EngineMismatchError(RuntimeError):
    """A cached engine that does not fit this machine or this ONNX, and no way to rebuild it."""


class EngineCacheError(RuntimeError):
    """The engine cache directory cannot be created or written."""


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on. Two keys equal <=> the engine is valid."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str      # e.g. "8.7" for the AGX Orin
    precision: str
    onnx_sha256: str
    batch_range: str             # the optimization profile's batch sizes, "min-opt-max", e.g. "1-2-4"
    tf32: str                    # "on" | "off": TF32 tactics allowed for FP32 layers (BuilderFlag.TF32)

    @classmethod
    def of(cls, tensorrt_version: str, gpu_name: str, compute_capability: str, precision: str, onnx: Path,
           batches: tuple[int, int, int], tf32: bool) -> "EngineKey":
        """The key of an engine built from the file `onnx`: its content's hash, not its path, so an ONNX
        rewritten in place gets a new engine and a copy elsewhere reuses the old one."""
        return cls(tensorrt_version, gpu_name, compute_capability, precision, sha256_of(onnx),
                   "-".join(map(str, batches)), "on" if tf32 else "off")

    def mismatches(self, other: "EngineKey") -> list[str]:
        """Human-readable differences, `self` being the engine's and `other` what runs now."""
        return [f"{name}: engine has {getattr(self, name)!r}, this machine needs {getattr(other, name)!r}"
                for name in asdict(self) if getattr(self, name) != getattr(other, name)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """`$ROS_HOME/bisegunet_engines`, with ROS's own default for ROS_HOME (`~/.ros`)."""
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(ros_home) / CACHE_SUBDIR


def prepare_cache_dir(directory: str | os.PathLike | None) -> Path:
    """The cache directory (default when None or ""), created and checked writable.

    Raises EngineCacheError naming the directory and the fix; the check writes a probe file,
    because permission bits do not tell (a read-only mount, or root).
    """
    path = Path(directory).expanduser() if directory else default_cache_dir()
    fix = "set engine_cache_dir (node parameter, or --engine-cache-dir) to a writable directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise EngineCacheError(f"engine cache directory {path} is not writable ({exc.strerror or exc}); "
                               f"{fix}") from exc
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_path(cache_dir: Path, onnx: Path, key: EngineKey) -> Path:
    """`model.fp16.b1-2-4.trt10.3.0.orin.engine` (`.notf32` when TF32 is off): the name says what it is for."""
    tf32 = "" if key.tf32 == "on" else ".notf32"
    return cache_dir / (f"{onnx.stem}.{key.precision}.b{key.batch_range}{tf32}.trt{key.tensorrt_version}."
                        f"{_slug(key.gpu_name)}.engine")


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def timing_cache_path(cache_dir: Path, onnx: Path, key: EngineKey) -> Path:
    """Layer timings are reusable across precisions and ONNX edits, not across TensorRT or GPUs."""
    return cache_dir / f"{onnx.stem}.trt{key.tensorrt_version}.{_slug(key.gpu_name)}.timing-cache"


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into a temporary file beside `path`, flushed to disk, then renamed over `path`: a process killed
    midway leaves the old file (or none) and a stray temporary file, never a truncated `path`."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, path)


def write_with_sidecar(path: Path, data: bytes, record: dict | None = None) -> None:
    """`data` to `path`, then its sidecar: `record` plus the data's size, SHA-256 and the date (both atomically)."""
    write_atomically(path, data)
    record = {**(record or {}), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "build_date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomically(sidecar_path(path), (json.dumps(record, indent=2) + "\n").encode())


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(sidecar_path(path).read_text())
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def damage(path: Path) -> str | None:
    """Why `path` is not the file its sidecar recorded (size, SHA-256), or None when it is."""
    record = _read_record(path)
    if record is None or "bytes" not in record or "sha256" not in record:
        return f"sidecar {sidecar_path(path)} is missing or records no size and hash"
    size = path.stat().st_size
    if size != record["bytes"]:
        return f"{path} has {size} bytes, its sidecar records {record['bytes']} (truncated by a killed build?)"
    if sha256_of(path) != record["sha256"]:
        return f"{path} does not have the SHA-256 its sidecar records (corrupt)"
    return None


def read_verified(path: Path) -> bytes | None:
    """The bytes of `path` when it is the file its sidecar records; None (with a warning) when it is not."""
    if not path.is_file():
        return None
    reason = damage(path)
    if reason:
        log.warning("ignoring %s: %s", path, reason)
        return None
    return path.read_bytes()


def read_sidecar(engine: Path) -> EngineKey | None:
    """The key recorded for `engine`, or None when the sidecar is missing or unreadable."""
    record = _read_record(engine)
    try:
        return EngineKey(**{name: str(record[name]) for name in EngineKey.__dataclass_fields__})
    except (KeyError, TypeError):
        return None


def resolve_engine(cache_dir: Path, onnx: Path, key: EngineKey,
                   build: Callable[[Path], bytes] | None) -> Path:
    """Path of an engine in `cache_dir` valid for `key`, built with `build(onnx)` (the serialized engine) when
    needed, and written with its sidecar.

    `build=None` forbids building: then anything but a matching engine raises EngineMismatchError.
    """
    engine = engine_path(cache_dir, onnx, key)
    recorded = read_sidecar(engine) if engine.is_file() else None
    damaged = damage(engine) if recorded == key else None
    if recorded == key and damaged is None:
        log.info("reusing engine %s", engine)
        return engine
    if damaged:
        reason = damaged
    elif engine.is_file():
        reason = ("; ".join(recorded.mismatches(key)) if recorded
                  else f"sidecar {sidecar_path(engine)} is missing or unreadable")
    else:
        reason = "no engine built yet"
    if build is None:
        raise EngineMismatchError(f"engine {engine} cannot be used for {onnx}: {reason}. Rebuild it with "
                                  f"`bisegunet-build-engine --onnx {onnx} --precision {key.precision} "
                                  f"--engine-cache-dir {cache_dir}`.")
    log.warning("building engine %s from %s (%s)", engine, onnx, reason)
    write_with_sidecar(engine, build(onnx), asdict(key))
    return engine
