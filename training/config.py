"""The one place YAML configuration is read: a file, then key=value overrides, into a dataclass.

Unknown keys are errors (naming the key and the valid ones), so a typo never silently trains
with a default. Nested dataclasses are nested mappings; overrides use dotted keys (data.height=256).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override that does not fit its dataclass."""


def _build(cls: type, values: dict, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        kwargs[name] = _build(hint, value, f"{where}.{name}") if dataclasses.is_dataclass(hint) else value
    return cls(**kwargs)


def _set_dotted(values: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        values = values.setdefault(part, {})
        if not isinstance(values, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    values[leaf] = value


def load_config(path: str | Path | None, cls: type[T], overrides: list[str] = ()) -> T:
    """Read `path` (YAML; None = defaults), apply `key=value` overrides, build and check `cls`."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such configuration file")
        values = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must be key=value")
        _set_dotted(values, key.strip(), yaml.safe_load(text))
    return _build(cls, values, str(path) if path else cls.__name__)
