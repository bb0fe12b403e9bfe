"""The one place YAML configuration is read: a file, then key=value overrides, into a dataclass.

Unknown keys are errors (naming the key and the valid ones), so a typo never silently trains
with a default. Nested dataclasses are nested mappings; overrides use dotted keys (data.height=256).
Every value is checked before anything runs: its type against the field's annotation (int, float,
bool, str, list[...], unions with None; an int is a valid float), then the limits a dataclass
declares in class variables, so `epochs=abc` or `iters_per_epoch=-1` stops at load time with a
one-line ConfigError that names the key, the value and what is accepted:
  RANGES: {field: (low, high)}  inclusive bounds, None for an open end
  CHOICES: {field: (pattern, what)}  a regular expression the whole string must match, and its wording
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
              type(None): "null"}


class ConfigError(ValueError):
    """A configuration file or override that does not fit its dataclass."""


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"a list of {_describe(item).removeprefix('a ').removeprefix('an ')}s"
    return TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _fits(hint: Any, value: Any) -> bool:
    """Whether `value` (as YAML read it) is of the annotated type; bool is not an int, an int is a float."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(h, value) for h in typing.get_args(hint))
    if origin is list:
        return isinstance(value, list) and all(_fits(typing.get_args(hint)[0], v) for v in value)
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def _check(cls: type, name: str, hint: Any, value: Any, where: str) -> Any:
    """`value` checked against the annotation and the class's RANGES/CHOICES; ints become floats where asked."""
    if hint is str and _fits(float, value):
        value = str(value)              # name=2024: YAML read a number where a string is meant
    if not _fits(hint, value):
        raise ConfigError(f"{where}: {value!r} is not {_describe(hint)}")
    if hint is float:
        value = float(value)
    low, high = getattr(cls, "RANGES", {}).get(name, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f"at least {low}" if low is not None else f"at most {high}")
        raise ConfigError(f"{where}: {value!r} is out of range; accepted: {bounds}")
    pattern, what = getattr(cls, "CHOICES", {}).get(name, (None, ""))
    if pattern is not None and not re.fullmatch(pattern, value):
        raise ConfigError(f"{where}: {value!r} is not accepted; accepted: {what}")
    return value


def _build(cls: type, values: dict, source: str, prefix: str = "") -> Any:
    """`cls` from `values`; errors read `source: dotted.key: what is wrong`."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the file'}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key {', '.join(prefix + k for k in unknown)}; "
                          f"valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        kwargs[name] = (_build(hint, value, source, f"{prefix}{name}.") if dataclasses.is_dataclass(hint)
                        else _check(cls, name, hint, value, f"{source}: {prefix}{name}"))
    return cls(**kwargs)


def _set_dotted(values: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        values = values.setdefault(part, {})
        if not isinstance(values, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    values[leaf] = value


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:     # one line: where the parser stopped and why
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None


def load_config(path: str | Path | None, cls: type[T], overrides: list[str] = ()) -> T:
    """Read `path` (YAML; None = defaults), apply `key=value` overrides, build and check `cls`."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such configuration file")
        values = _yaml(path.read_text(), str(path)) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values, got {values!r}")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must be key=value")
        _set_dotted(values, key.strip(), _yaml(text, f"override {item!r}"))
    return _build(cls, values, str(path) if path else cls.__name__)
