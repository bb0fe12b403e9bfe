"""Datasets and loaders for training: synthetic scenes, Cityscapes, or image/mask folders.

Importing this package needs no torch (bisegunet-make-bag renders and reads frames without it);
only a dataset's tensors and build_loader import torch, when used.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bisegunet_ros.classes import (CITYSCAPES_DEFINITION, ClassDefinition, cityscapes_label_to_train_id,
                                   load_class_definition)

from .datasets import (DatasetError, PairedFiles, SegmentationDataset, SyntheticStreetScenes, cityscapes_pairs,
                       folder_pairs)
from .folders import MASK_FORMATS, FolderDataset, MaskScan, check_masks, scan_labels
from .scenes import render_scene
from .transforms import Augment

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

KINDS = ("synthetic", "cityscapes", "folders")
# synthetic scenes of each split come from a seed of their own: val and test never hold training scenes
SPLIT_SEED_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_006}
HELD_OUT_BAG_SEED = 9_000_011   # bisegunet-make-bag's synthetic scenes: a seed no split of data.seed 0 uses
RUN_SEED_STRIDE = 3             # training scenes of run seed s: data.seed + 3 s


def split_seed(data_seed: int, split: str, run_seed: int = 0) -> int:
    """The synthetic scene seed of `split`: the training scenes change with the run's seed, validation
    and test stay fixed. Training seeds are data_seed + 3 * run_seed, so they are data_seed modulo 3
    while validation (offset 1_000_003, 1 modulo 3) and test (2_000_006, 2 modulo 3) are not: no run
    seed ever trains on a validation or test scene. A seed equal to make-bag's HELD_OUT_BAG_SEED is refused."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"split must be one of {tuple(SPLIT_SEED_OFFSETS)}, got {split!r}")
    seed = data_seed + SPLIT_SEED_OFFSETS[split] + (RUN_SEED_STRIDE * run_seed if split == "train" else 0)
    if seed == HELD_OUT_BAG_SEED:
        raise ValueError(f"data.seed {data_seed} (run seed {run_seed}) gives the {split} split the scene seed "
                         f"{HELD_OUT_BAG_SEED} of bisegunet-make-bag's held-out bags; choose another data.seed")
    return seed


def train_scene_seed(kind: str, data_seed: int, run_seed: int) -> int | None:
    """The seed of a run's training scenes: split_seed's for synthetic data, None for data read from disk.
    test.json records it, so that a result is reused only where its training data is what this code draws."""
    return split_seed(data_seed, "train", run_seed) if kind == "synthetic" else None


def build_dataset(kind: str, split: str, height: int, width: int, mean, std, augment: bool = False,
                  scale_range=(0.75, 1.5), flip: bool = True, color_jitter: float = 0.3, length: int = 1000,
                  seed: int = 0, difficulty: float = 0.6, root: str = "", classes: ClassDefinition | None = None,
                  mask_format: str = "ids", run_seed: int = 0, full_resolution_labels: bool = False
                  ) -> SegmentationDataset:
    """One dataset of `kind` for `split` ("train", "val" or "test"); `classes` and `mask_format` are for folders.
    `run_seed` draws the synthetic training scenes (split_seed); `full_resolution_labels` keeps each label
    at its own size while the image is resized to the network (scoring at the label's resolution)."""
    if kind not in KINDS:
        raise ValueError(f"data.kind must be one of {KINDS}, got {kind!r}")
    if kind != "folders" and mask_format != "ids":
        raise ValueError(f"data.mask_format is for folder datasets (data.kind=folders), not data.kind={kind}")
    aug = Augment(height, width, tuple(scale_range), flip, color_jitter) if augment else None
    if kind == "synthetic":     # rendered at the network size: there the label's resolution is the network's
        return SyntheticStreetScenes(length, height, width, split_seed(seed, split, run_seed), difficulty, aug,
                                     mean, std)
    if not root:
        raise ValueError(f"data.root must name the dataset directory for data.kind={kind}")
    if kind == "folders" and split == "test" and not (Path(root) / "test" / "images").is_dir():
        # folder_pairs falls back to root itself, which holds the training images
        raise ValueError(f"data.test_size > 0 needs {Path(root) / 'test'}/images and masks, scenes not trained on")
    if kind == "cityscapes":
        dataset = PairedFiles(cityscapes_pairs(root, split), cityscapes_label_to_train_id(), height, width, aug,
                              mean, std)
    else:
        dataset = FolderDataset(folder_pairs(root, split), classes or CITYSCAPES_DEFINITION, mask_format, height,
                                width, aug, mean, std)
    dataset.full_resolution_labels = full_resolution_labels
    return dataset


def class_definition(path: str, kind: str) -> ClassDefinition:
    """The classes of `data.classes` (a class definition file; "" = Cityscapes' 19 train ids)."""
    if not path:
        return CITYSCAPES_DEFINITION
    if kind != "folders":
        raise ValueError(f"data.classes is for folder datasets (data.kind=folders); data.kind={kind} has "
                         "Cityscapes' 19 classes")
    return load_class_definition(path)


def build_loader(dataset: SegmentationDataset, batch_size: int, shuffle: bool, workers: int, distributed: bool,
                 seed: int) -> DataLoader:
    """DataLoader, seeded, pinned memory only with CUDA. Training (shuffle) draws from a DistributedSampler
    (also in one process: then one process sees, batch for batch, the union of what N processes see).
    Scoring (no shuffle) takes every world-th sample from the rank's own: each sample exactly once over the
    ranks, where DistributedSampler would pad the last shard with repeated samples."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    world, rank = (torch.distributed.get_world_size(), torch.distributed.get_rank()) if distributed else (1, 0)
    sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed) if shuffle
               else range(rank, len(dataset), world))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), drop_last=shuffle,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)


__all__ = ["DatasetError", "FolderDataset", "HELD_OUT_BAG_SEED", "KINDS", "MASK_FORMATS", "MaskScan", "build_dataset",
           "build_loader", "check_masks", "class_definition", "render_scene", "scan_labels", "split_seed",
           "train_scene_seed"]
