"""What the runtime needs to know about a model, carried in the ONNX file's metadata_props.

The exporter writes these keys and the runtime reads them back, so the .onnx file alone is
enough to run a model: no training config, no class list on the side. Values are JSON strings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .classes import ClassTable

PREFIX = "bisegunet."
FORMAT_VERSION = 1
REQUIRED = ("format_version", "class_names", "palette", "input_size", "mean", "std", "channel_order")


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelInfo:
    """Class table and input contract of an exported model."""

    classes: ClassTable
    input_height: int
    input_width: int
    mean: tuple[float, float, float]          # per channel, on 0-1 pixel values, in channel_order
    std: tuple[float, float, float]
    channel_order: str = "rgb"                # order of the network's input channels
    name: str = "bisegunet"
    preset: str = ""
    binarized: bool = True
    training_command: str = ""
    commit: str = ""
    extra: dict = field(default_factory=dict)  # any further bisegunet.* keys, kept verbatim

    def to_metadata(self) -> dict[str, str]:
        """metadata_props for the exporter: every value a JSON string under the bisegunet. prefix."""
        values = {
            "format_version": FORMAT_VERSION, "name": self.name, "preset": self.preset,
            "class_names": list(self.classes.names), "palette": [list(c) for c in self.classes.palette],
            "input_size": [self.input_height, self.input_width], "mean": list(self.mean),
            "std": list(self.std), "channel_order": self.channel_order, "binarized": self.binarized,
            "training_command": self.training_command, "commit": self.commit, **self.extra,
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
        try:
            height, width = (int(v) for v in values.pop("input_size"))
            return cls(
                classes=ClassTable(tuple(values.pop("class_names")), tuple(tuple(c) for c in values.pop("palette"))),
                input_height=height, input_width=width,
                mean=tuple(float(v) for v in values.pop("mean")), std=tuple(float(v) for v in values.pop("std")),
                channel_order=values.pop("channel_order"), name=values.pop("name", "bisegunet"),
                preset=values.pop("preset", ""), binarized=bool(values.pop("binarized", True)),
                training_command=values.pop("training_command", ""), commit=values.pop("commit", ""),
                extra={k: v for k, v in values.items() if k != "format_version"},
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: malformed bisegunet metadata: {exc}") from exc
