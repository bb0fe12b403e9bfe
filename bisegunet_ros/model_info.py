"""What the runtime needs to know about a model, carried in the ONNX file's metadata_props.

The exporter writes these keys and the runtime reads them back, so the .onnx file alone is
enough to run a model: no training config, no class list on the side. Values are JSON strings.
Format 2 (issue 14): uint8 NHWC `pixels` in, uint8 `labels` and `confidence` out; the graph
normalises. Format 1 files (float NCHW in, float logits out) are refused with the re-export command.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .classes import ClassTable
from .onnx_wire import metadata_props

PREFIX = "bisegunet."
FORMAT_VERSION = 2
REQUIRED = ("format_version", "class_names", "palette", "input_size", "mean", "std", "channel_order")


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


def cpu_int8_path(tensorrt_int8: str | os.PathLike) -> Path:
    """Where the CPU INT8 model lies beside the TensorRT one: NAME.int8.onnx -> NAME.int8-cpu.onnx
    (any other NAME.onnx -> NAME.cpu.onnx). bisegunet-quantize writes it there, the ONNX Runtime
    backend looks for it there."""
    path = Path(tensorrt_int8)
    if path.name.endswith(".int8.onnx"):
        return path.with_name(path.name.removesuffix(".int8.onnx") + ".int8-cpu.onnx")
    return path.with_name(path.name.removesuffix(".onnx") + ".cpu.onnx")


@dataclass(frozen=True)
class ModelInfo:
    """Class table and input contract of an exported model."""

    classes: ClassTable
    input_height: int
    input_width: int
    mean: tuple[float, float, float]          # per channel, on 0-1 pixel values, in channel_order
    std: tuple[float, float, float]           # (applied inside the graph; recorded for training and calibration)
    channel_order: str = "rgb"                # channel order of the uint8 `pixels` the runtime feeds
    name: str = "bisegunet"
    preset: str = ""
    binarized: bool = True
    training_command: str = ""
    commit: str = ""
    training_config: dict = field(default_factory=dict)   # the run's TrainConfig fields (provenance)
    extra: dict = field(default_factory=dict)  # any further bisegunet.* keys, kept verbatim

    @property
    def int8_target(self) -> str | None:
        """Which of bisegunet-quantize's INT8 models this is: "tensorrt" (symmetric) or "cpu" (uint8
        activations, for ONNX Runtime's integer kernels); None for a float model. INT8 files written
        before the CPU one existed carry no `int8_target` and are the TensorRT one."""
        if self.extra.get("precision") != "int8":
            return None
        return str(self.extra.get("int8_target", "tensorrt"))

    def to_metadata(self) -> dict[str, str]:
        """metadata_props for the exporter: every value a JSON string under the bisegunet. prefix."""
        values = {
            "format_version": FORMAT_VERSION, "name": self.name, "preset": self.preset,
            "class_names": list(self.classes.names), "palette": [list(c) for c in self.classes.palette],
            "input_size": [self.input_height, self.input_width], "mean": list(self.mean),
            "std": list(self.std), "channel_order": self.channel_order, "binarized": self.binarized,
            "training_command": self.training_command, "commit": self.commit,
            "training_config": self.training_config, **self.extra,
        }
        return {PREFIX + k: json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], source: str = "model") -> "ModelInfo":
        """Parse metadata_props; raise ModelError naming `source` and what is missing or malformed."""
        values = {}
        for key, text in props.items():
            if key.startswith(PREFIX):
                try:
                    values[key[len(PREFIX):]] = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ModelError(f"{source}: metadata {key!r} is not valid JSON ({exc})") from exc
        missing = [k for k in REQUIRED if k not in values]
        if missing:
            raise ModelError(
                f"{source}: ONNX metadata lacks {', '.join(PREFIX + k for k in missing)}; it was not exported "
                "by bisegunet-export. Re-export it with `bisegunet-export --checkpoint CKPT --out MODEL.onnx`.")
        if values["format_version"] > FORMAT_VERSION:
            raise ModelError(f"{source}: metadata format {values['format_version']} is newer than this "
                             f"runtime understands ({FORMAT_VERSION}); update bisegunet_ros.")
        if values["format_version"] < FORMAT_VERSION:
            raise ModelError(
                f"{source}: metadata format {values['format_version']} (float input, logits output) is older than "
                f"this runtime's {FORMAT_VERSION} (uint8 pixels in, uint8 labels out). Re-export it with "
                "`bisegunet-export --checkpoint CKPT --out MODEL.onnx` (or `bisegunet-export --from-onnx OLD.onnx "
                "--out MODEL.onnx` when only the old ONNX is left).")
        try:
            height, width = (int(v) for v in values.pop("input_size"))
            return cls(
                classes=ClassTable(tuple(values.pop("class_names")), tuple(tuple(c) for c in values.pop("palette"))),
                input_height=height, input_width=width,
                mean=tuple(float(v) for v in values.pop("mean")), std=tuple(float(v) for v in values.pop("std")),
                channel_order=values.pop("channel_order"), name=values.pop("name", "bisegunet"),
                preset=values.pop("preset", ""), binarized=bool(values.pop("binarized", True)),
                training_command=values.pop("training_command", ""), commit=values.pop("commit", ""),
                training_config=dict(values.pop("training_config", {})),
                extra={k: v for k, v in values.items() if k != "format_version"},
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: malformed bisegunet metadata: {exc}") from exc

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> "ModelInfo":
        """THE reader of model metadata from an ONNX file; ModelError names the file and the fix."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; give the .onnx written by bisegunet-export")
        try:
            props = metadata_props(path.read_bytes())
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from exc
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: not a loadable ONNX model ({exc}); re-export it with bisegunet-export") from exc
        return cls.from_metadata(props, str(path))

