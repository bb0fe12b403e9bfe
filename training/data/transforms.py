"""Augmentations of section IV.B on (rgb, label) pairs: random scale and crop, horizontal flip,
colour jitter. Labels are only ever resized with nearest neighbour and padded with 255."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bisegunet_ros.classes import IGNORE_INDEX

from ..normalisation import normalise


@dataclass
class Augment:
    height: int
    width: int
    scale_range: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    color_jitter: float = 0.3          # max relative change of brightness, contrast, saturation

    def __call__(self, rgb: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # scale so the crop covers a random fraction of the scene, then crop (pad if too small)
        scale = rng.uniform(*self.scale_range) * max(self.height / rgb.shape[0], self.width / rgb.shape[1])
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
        pad_h, pad_w = max(self.height - rgb.shape[0], 0), max(self.width - rgb.shape[1], 0)
        if pad_h or pad_w:
            rgb = cv2.copyMakeBorder(rgb, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        y = rng.integers(0, rgb.shape[0] - self.height + 1)
        x = rng.integers(0, rgb.shape[1] - self.width + 1)
        rgb, label = rgb[y:y + self.height, x:x + self.width], label[y:y + self.height, x:x + self.width]
        if self.flip and rng.random() < 0.5:
            rgb, label = rgb[:, ::-1], label[:, ::-1]
        if self.color_jitter > 0:
            rgb = jitter_colour(rgb, rng, self.color_jitter)
        return np.ascontiguousarray(rgb), np.ascontiguousarray(label)


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    img = rgb.astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, 3)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * saturation
    img = (img - img.mean()) * contrast + img.mean()
    return np.clip(img * brightness, 0, 255).astype(np.uint8)


def resize_pair(rgb: np.ndarray, label: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation: the whole frame at the network size (labels by nearest neighbour)."""
    if rgb.shape[:2] == (height, width):
        return rgb, label
    return (cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA),
            cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST))


def to_tensors(rgb: np.ndarray, label: np.ndarray, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised float32 CHW image (RGB, 0-1 scale then mean/std) and int64 label."""
    img = normalise(rgb, mean, std)
    return torch.from_numpy(img.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64))
