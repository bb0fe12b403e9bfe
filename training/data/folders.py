"""Folder datasets with their own classes: masks as class ids or as class colours.

`images/` + `masks/` (pairs from folder_pairs) read through a class definition file
(bisegunet_ros.classes.load_class_definition). Masks become class ids with 255 = ignore:
- `ids`: one single-channel PNG per image, value = index in the class list, the file's
  `ignore_index` = ignored; any other value is a DatasetError naming the file.
- `colors`: RGB PNG in the classes' colours; a pixel whose colour is in no class is ignored and
  counted, and `scan` refuses a dataset where such pixels exceed a share (naming file and colours).
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bisegunet_ros.classes import IGNORE_INDEX, ClassDefinition

from .datasets import DatasetError, PairedFiles, SegmentationDataset, read_image
from .transforms import Augment

log = logging.getLogger(__name__)
MASK_FORMATS = ("ids", "colors")


def color_key(rgb: np.ndarray) -> np.ndarray:
    """(H, W) int64 key r<<16 | g<<8 | b of an (H, W, 3) RGB image."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def key_color(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


@dataclass
class MaskScan:
    """What one pass over a dataset's masks found: pixels per class and colours in no class."""

    class_pixels: np.ndarray                     # (n,) labelled pixels per class
    present_pixels: np.ndarray                   # (n,) pixels of the masks each class appears in
    pixels: int = 0                              # all mask pixels
    masks: int = 0                               # masks read
    unknown: dict[Path, dict[tuple[int, int, int], int]] = field(default_factory=dict)   # per mask file

    @property
    def unknown_pixels(self) -> int:
        return sum(sum(colors.values()) for colors in self.unknown.values())

    def check_unknown(self, limit: float, classes_file: str, limit_name: str = "data.max_unknown_color_fraction"
                      ) -> None:
        """Refuse a dataset whose share of colours in no class exceeds `limit`; log the share otherwise."""
        if not self.unknown:
            return
        share = self.unknown_pixels / max(self.pixels, 1)
        path, colors = max(self.unknown.items(), key=lambda item: sum(item[1].values()))
        top = sorted(colors.items(), key=lambda item: -item[1])[:5]
        named = ", ".join(f"{list(c)} ({n} px)" for c, n in top)
        where = (f"{100 * share:.2f} % of the mask pixels ({len(self.unknown)} of {self.masks} masks) have a colour "
                 f"of no class in {classes_file}; most in {path}: {named}")
        if share > limit:
            raise DatasetError(f"{where}. Above {limit_name} = {limit}: fix the masks or the "
                               "class colours (or raise the limit to train with these pixels ignored)")
        log.warning("%s; those pixels are ignored", where)


class FolderDataset(PairedFiles):
    """Image/mask pairs read with a class definition, masks as `ids` or `colors`."""

    def __init__(self, pairs: list[tuple[Path, Path]], definition: ClassDefinition, mask_format: str,
                 height: int, width: int, augment: Augment | None = None, mean=None, std=None):
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"data.mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        super().__init__(pairs, None, height, width, augment, mean, std)
        self.classes, self.definition, self.mask_format = definition.table, definition, mask_format
        self.keys = definition.color_keys()
        self.key_order = np.argsort(self.keys)

    def read_mask(self, path: Path) -> np.ndarray:
        return self.decode(path)[0]

    def decode(self, path: Path) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
        """Class ids (uint8, 255 = ignore) of the mask at `path`, and its colours in no class with pixel counts."""
        if self.mask_format == "ids":
            return self._decode_ids(path), {}
        return self._decode_colors(path)

    def _decode_ids(self, path: Path) -> np.ndarray:
        mask = read_image(path, cv2.IMREAD_UNCHANGED)
        if mask.ndim != 2:
            raise DatasetError(f"{path}: data.mask_format is ids, so a mask must be a single-channel PNG of class "
                               f"ids, got shape {mask.shape} (colour masks: data.mask_format=colors)")
        n, ignore = len(self.classes), self.definition.ignore_index
        bad = np.setdiff1d(np.unique(mask), [*range(n), ignore])
        if bad.size:
            raise DatasetError(f"{path}: ids {bad.tolist()} are outside the class table (0-{n - 1} and "
                               f"{ignore} = ignore)")
        return np.where(mask == ignore, IGNORE_INDEX, mask).astype(np.uint8)

    def _decode_colors(self, path: Path) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
        bgr = read_image(path, cv2.IMREAD_COLOR)
        keys = color_key(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        sorted_keys = self.keys[self.key_order]
        pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        known = sorted_keys[pos] == keys
        label = np.where(known, self.key_order[pos], IGNORE_INDEX).astype(np.uint8)
        unknown = {}
        if not known.all():
            values, counts = np.unique(keys[~known], return_counts=True)
            unknown = {key_color(int(k)): int(c) for k, c in zip(values, counts)}
        return label, unknown



def scan_labels(dataset: SegmentationDataset, workers: int = 0) -> MaskScan:
    """Read every label of `dataset` once (with `workers` processes), unaugmented: checks each file of a
    folder dataset and counts the pixels of each class (and, for colour masks, the colours in no class).
    Plain processes, no torch: bisegunet-make-bag checks masks on a machine without it."""
    n = len(dataset.classes)
    result = MaskScan(np.zeros(n, np.int64), np.zeros(n, np.int64))
    read = _ScanItems(dataset).__getitem__
    with contextlib.ExitStack() as stack:
        if workers > 0:
            pool = stack.enter_context(ProcessPoolExecutor(workers))
            items = pool.map(read, range(len(dataset)), chunksize=16)
        else:
            items = map(read, range(len(dataset)))
        for item in tqdm(items, total=len(dataset), desc="reading labels", unit="label", disable=None, leave=False):
            if isinstance(item, DatasetError):     # raised here, not in a worker: one line, no worker traceback
                raise item
            source, counts, pixels, unknown = item
            result.class_pixels += counts
            result.present_pixels += np.where(counts > 0, pixels, 0)
            result.pixels += pixels
            result.masks += 1
            if unknown:
                result.unknown[source] = unknown
    return result


def check_masks(dataset: SegmentationDataset, limit: float, classes_file: str, workers: int = 0,
                limit_name: str = "data.max_unknown_color_fraction") -> MaskScan | None:
    """For a folder dataset: read every mask before the first step (a bad file stops the run now, not
    mid-epoch) and refuse too many colours in no class. None for other datasets (nothing on disk to check)."""
    if not isinstance(dataset, FolderDataset):
        return None
    scan = scan_labels(dataset, workers)
    scan.check_unknown(limit, classes_file or "the class table", limit_name)
    return scan


class _ScanItems:
    """One item per sample: (mask path or index, pixels per class, label pixels, colours in no class), or
    the DatasetError the sample raised."""

    def __init__(self, dataset: SegmentationDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self._counts(index)
        except DatasetError as exc:
            return exc

    def _counts(self, index: int):
        if isinstance(self.dataset, FolderDataset):
            image_path, source = self.dataset.pairs[index]
            label, unknown = self.dataset.decode(source)
            self.dataset.check_size(read_image(image_path, cv2.IMREAD_COLOR), label, image_path, source)
        else:
            (_, label), source, unknown = self.dataset.load(index), index, {}
        counts = np.bincount(label.ravel(), minlength=256)[: len(self.dataset.classes)]
        return source, counts, label.size, unknown
