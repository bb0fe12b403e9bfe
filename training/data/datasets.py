"""Datasets: built-in synthetic street scenes, the Cityscapes layout, and image/mask folders.

Each yields (normalised float32 CHW image, int64 label) with train ids and 255 = ignore; the
training split is augmented, the validation split only resized to the network size, the test
split's image resized and its label kept at its own resolution (full_resolution_labels).
"""
from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

import cv2
import numpy as np

from bisegunet_ros.classes import CITYSCAPES, IGNORE_INDEX, ClassTable

from .scenes import TRAIN_RENDER_SCALE, render_scene
from .transforms import Augment, resize_pair, to_tensors

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """A dataset on disk that cannot be used; the message names the file and the fix."""


class SegmentationDataset:
    """Common part: raw (rgb, label) from `load`, then augmentation or resize, then tensors.

    A map-style dataset for torch's DataLoader (__getitem__ and __len__) that imports torch only
    in __getitem__: reading frames (`load`) needs no torch."""

    classes: ClassTable = CITYSCAPES
    full_resolution_labels = False     # scoring at the label's resolution: the label is never resized

    def __init__(self, height: int, width: int, augment: Augment | None, mean, std):
        self.height, self.width, self.augment, self.mean, self.std = height, width, augment, mean, std

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes.names

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        rgb, label = self.load(index)
        if self.augment is not None:
            # torch's RNG is seeded per worker and epoch by the DataLoader: reproducible, new each epoch
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            rgb, label = self.augment(rgb, label, rng)
        elif self.full_resolution_labels:
            rgb = resize_pair(rgb, label, self.height, self.width)[0]
        else:
            rgb, label = resize_pair(rgb, label, self.height, self.width)
        return to_tensors(rgb, label, self.mean, self.std)


class SyntheticStreetScenes(SegmentationDataset):
    """`length` procedurally drawn scenes (scenes.py); scene i of a seed never changes."""

    def __init__(self, length: int, height: int, width: int, seed: int = 0, difficulty: float = 0.6,
                 augment: Augment | None = None, mean=None, std=None,
                 render_scale: float = TRAIN_RENDER_SCALE):
        super().__init__(height, width, augment, mean, std)
        self.length, self.seed, self.difficulty = length, seed, difficulty
        # render a little larger than the crop so random scaling has pixels to work with
        self.render_size = (round(height * render_scale), round(width * render_scale)) if augment else (height, width)

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return render_scene(self.seed, index, *self.render_size, self.difficulty)


def read_image(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DatasetError(f"{path}: unreadable image (corrupt or not PNG/JPEG)")
    return image


class PairedFiles(SegmentationDataset):
    """Images and label masks on disk, paired by name; masks are mapped through `lut` to train ids."""

    def __init__(self, pairs: list[tuple[Path, Path]], lut: np.ndarray | None, height: int, width: int,
                 augment: Augment | None = None, mean=None, std=None):
        super().__init__(height, width, augment, mean, std)
        self.pairs, self.lut = pairs, lut

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        rgb = cv2.cvtColor(read_image(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        label = self.read_mask(mask_path)
        self.check_size(rgb, label, image_path, mask_path)
        return rgb, label

    def read_mask(self, path: Path) -> np.ndarray:
        """Class ids (uint8, 255 = ignore) of the mask at `path`; raises DatasetError naming the file."""
        label = read_image(path, cv2.IMREAD_UNCHANGED)
        if label.ndim != 2:
            raise DatasetError(f"{path}: a mask must be single-channel class ids, got shape {label.shape}")
        if self.lut is not None:
            label = self.lut[label]
        bad = np.setdiff1d(np.unique(label), [*range(len(self.classes)), IGNORE_INDEX])
        if bad.size:
            raise DatasetError(f"{path}: ids {bad.tolist()} are outside the class table "
                               f"(0-{len(self.classes) - 1} and {IGNORE_INDEX} = ignore)")
        return label.astype(np.uint8)

    @staticmethod
    def check_size(image: np.ndarray, label: np.ndarray, image_path: Path, mask_path: Path) -> None:
        if label.shape != image.shape[:2]:
            raise DatasetError(f"{mask_path}: size {label.shape} differs from its image {image_path} {image.shape[:2]}")

    def validate(self) -> None:
        """Load every pair once; raises on the first bad one."""
        for i in range(len(self)):
            self.load(i)


def _directory(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing {what} directory; set data.root to the dataset's top directory")
    return path


def folder_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """root/images/*.{png,jpg} with root/masks/<same stem>.png (or root/<split>/images, root/<split>/masks)."""
    root = Path(root)
    base = root / split if (root / split / "images").is_dir() else root
    images = sorted(p for p in _directory(base / "images", "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    masks = _directory(base / "masks", "masks")
    if not images:
        raise DatasetError(f"{base / 'images'}: no .png or .jpg images")
    pairs = []
    for image in images:
        mask = masks / f"{image.stem}.png"
        if not mask.is_file():
            raise DatasetError(f"{image}: no mask {mask}; every image needs a mask of the same name")
        pairs.append((image, mask))
    return pairs


def cityscapes_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine/<split>/<city>/*_gtFine_labelIds.png."""
    root = Path(root)
    images = sorted(_directory(root / "leftImg8bit" / split, f"Cityscapes leftImg8bit/{split}")
                    .glob("*/*_leftImg8bit.png"))
    if not images:
        raise DatasetError(f"{root / 'leftImg8bit' / split}: no */*_leftImg8bit.png images")
    pairs = []
    for image in images:
        mask = (root / "gtFine" / split / image.parent.name /
                image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
        if not mask.is_file():
            raise DatasetError(f"{image}: no ground truth {mask}")
        pairs.append((image, mask))
    return pairs
