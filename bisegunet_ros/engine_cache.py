"""Which TensorRT engine may run: engines are keyed by TensorRT version, GPU and ONNX content.

An engine is only valid for the TensorRT version and GPU that built it, and for the exact ONNX
it came from. Each engine gets a JSON sidecar with that key; the runtime reuses an engine only
when the sidecar matches what is running now, otherwise it rebuilds from the ONNX next to it or
fails naming both files and the mismatch. It never runs a stale engine. Plain Python: the logic
is tested on machines without TensorRT.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


class EngineMismatchError(RuntimeError):
    """A cached engine that does not fit this machine or this ONNX, and no way to rebuild it."""


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on. Two keys equal <=> the engine is valid."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str      # e.g. "8.7" for the AGX Orin
    precision: str
    onnx_sha256: str

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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_path(onnx: Path, key: EngineKey) -> Path:
    """`model.fp16.trt10.3.0.orin.engine` next to `model.onnx`: the name says what it is for."""
    return onnx.with_name(f"{onnx.stem}.{key.precision}.trt{key.tensorrt_version}.{_slug(key.gpu_name)}.engine")


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def timing_cache_path(onnx: Path, key: EngineKey) -> Path:
    """Layer timings are reusable across precisions and ONNX edits, not across TensorRT or GPUs."""
    return onnx.with_name(f"{onnx.stem}.trt{key.tensorrt_version}.{_slug(key.gpu_name)}.timing-cache")


def write_sidecar(engine: Path, key: EngineKey) -> Path:
    record = {**asdict(key), "build_date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = sidecar_path(engine)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_sidecar(engine: Path) -> EngineKey | None:
    """The key recorded for `engine`, or None when the sidecar is missing or unreadable."""
    try:
        record = json.loads(sidecar_path(engine).read_text())
        return EngineKey(**{name: str(record[name]) for name in EngineKey.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_engine(onnx: Path, key: EngineKey, build: Callable[[Path, Path], None] | None) -> Path:
    """Path of an engine valid for `key`, building it with `build(onnx, engine)` when needed.

    `build=None` forbids building: then anything but a matching engine raises EngineMismatchError.
    """
    engine = engine_path(onnx, key)
    recorded = read_sidecar(engine) if engine.is_file() else None
    if recorded == key:
        log.info("reusing engine %s", engine)
        return engine
    if engine.is_file():
        reason = ("; ".join(recorded.mismatches(key)) if recorded
                  else f"sidecar {sidecar_path(engine)} is missing or unreadable")
    else:
        reason = "no engine built yet"
    if build is None:
        raise EngineMismatchError(f"engine {engine} cannot be used for {onnx}: {reason}. Rebuild it with "
                                  f"`bisegunet-build-engine --onnx {onnx} --precision {key.precision}`.")
    log.warning("building engine %s from %s (%s)", engine, onnx, reason)
    build(onnx, engine)
    write_sidecar(engine, key)
    return engine
