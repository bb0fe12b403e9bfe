"""Class tables: names, colours and the Cityscapes id mapping, shared by node, training and evaluation.

The 19 Cityscapes evaluation classes ("train ids" 0-18) are the default class set; 255 marks
pixels that are ignored in training and evaluation. The full label table (ids 0-33 and -1)
follows cityscapesScripts' ``helpers/labels.py``; only the fields needed here are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB colours of a model's classes, indexed by class id."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise ValueError(f"class table has {len(self.names)} names but {len(self.palette)} colours")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class names must be unique: {self.names}")

    def __len__(self) -> int:
        return len(self.names)

    def palette_array(self) -> np.ndarray:
        """(max(256, n), 3) uint8 lookup table: class id -> colour; ids outside the table are black."""
        lut = np.zeros((max(256, len(self.palette)), 3), np.uint8)
        lut[: len(self.palette)] = np.asarray(self.palette, np.uint8)
        return lut

    def resolve(self, classes: list[str | int]) -> list[int]:
        """Class ids for a list of names or ids; raises ValueError naming what is unknown."""
        ids = []
        for c in classes:
            if isinstance(c, str) and not c.isdigit():
                if c not in self.names:
                    raise ValueError(f"unknown class {c!r}; known: {', '.join(self.names)}")
                ids.append(self.names.index(c))
            else:
                i = int(c)
                if not 0 <= i < len(self.names):
                    raise ValueError(f"class id {i} outside 0..{len(self.names) - 1}")
                ids.append(i)
        return ids


class ClassFileError(ValueError):
    """A class definition file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ClassDefinition:
    """A class table with the mask value that means "ignore" in a dataset's id masks.

    Training and the runtime use 255 for ignored pixels whatever `ignore_index` says: datasets
    map their own ignore value to IGNORE_INDEX when they read a mask.
    """

    table: ClassTable
    ignore_index: int = IGNORE_INDEX

    def color_keys(self) -> np.ndarray:
        """(n,) int64 key r<<16 | g<<8 | b of each class colour, for decoding colour masks."""
        return np.array([(r << 16) | (g << 8) | b for r, g, b in self.table.palette], np.int64)


def load_class_definition(path: str | Path) -> ClassDefinition:
    """Read a class definition file (YAML: ignore_index and a list of {name, color}).

    Raises ClassFileError naming the file and the entry at fault, so a typo never trains a model
    with the wrong classes. Colours must be distinct: colour masks are decoded through them.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassFileError(f"{path}: no such class definition file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClassFileError(f"{path}: not valid YAML ({exc})") from exc
    unknown = sorted(set(values) - {"classes", "ignore_index"}) if isinstance(values, dict) else []
    if unknown:
        raise ClassFileError(f"{path}: unknown key {', '.join(map(str, unknown))}; valid keys: classes, ignore_index")
    if not isinstance(values, dict) or not isinstance(values.get("classes"), list) or not values["classes"]:
        raise ClassFileError(f"{path}: expected a mapping with a non-empty list under 'classes' "
                             "(each item {name: ..., color: [r, g, b]})")
    names, palette = [], []
    for i, item in enumerate(values["classes"]):
        where = f"{path}: classes[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "color"}:
            raise ClassFileError(f"{where}: expected {{name: ..., color: [r, g, b]}}, got {item!r}")
        name, color = item["name"], item["color"]
        if not isinstance(name, str) or not name:
            raise ClassFileError(f"{where}: name must be a non-empty string, got {name!r}")
        if (not isinstance(color, list) or len(color) != 3 or
                not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise ClassFileError(f"{where} ({name}): color must be [r, g, b] with integers 0-255, got {color!r}")
        if name in names:
            raise ClassFileError(f"{where}: class name {name!r} appears twice")
        if tuple(color) in palette:
            raise ClassFileError(f"{where} ({name}): color {color} is already {names[palette.index(tuple(color))]!r}; "
                                 "colours must be distinct")
        names.append(name)
        palette.append(tuple(color))
    ignore = values.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore, int) or isinstance(ignore, bool) or not len(names) <= ignore <= 255:
        raise ClassFileError(f"{path}: ignore_index must be an integer from {len(names)} (after the class ids) "
                             f"to 255, got {ignore!r}")
    return ClassDefinition(ClassTable(tuple(names), tuple(palette)), ignore)


# (name, id, train id, colour) from cityscapesScripts helpers/labels.py
_CITYSCAPES_LABELS = [
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
]

_EVALUATED = sorted((label for label in _CITYSCAPES_LABELS if label[2] != IGNORE_INDEX), key=lambda label: label[2])
CITYSCAPES = ClassTable(names=tuple(label[0] for label in _EVALUATED), palette=tuple(label[3] for label in _EVALUATED))
CITYSCAPES_DEFINITION = ClassDefinition(CITYSCAPES)


def cityscapes_label_to_train_id() -> np.ndarray:
    """(256,) uint8 lookup table from Cityscapes label ids (``*_labelIds.png``) to train ids.

    Ids not in the official table (and the license-plate id -1) map to the ignore index.
    """
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for _, label_id, train_id, _ in _CITYSCAPES_LABELS:
        lut[label_id] = train_id
    return lut
