"""Per-class weights of the cross-entropy term (`loss.class_weights`), for imbalanced classes.

`auto` is median frequency balancing (Eigen and Fergus, ICCV 2015): the frequency of a class is
its pixels over the pixels of the masks it appears in, and its weight the median of those
frequencies over its own, so rare classes (thin lane markings) weigh more and the median class 1.
"""
from __future__ import annotations

import logging

import numpy as np

from .data import MaskScan, scan_labels
from .data.datasets import SegmentationDataset

log = logging.getLogger(__name__)


def median_frequency_weights(scan: MaskScan, names: tuple[str, ...]) -> list[float]:
    """Weights from a pass over the labels; a class that never appears gets 1 (and a warning)."""
    present = scan.class_pixels > 0
    if not present.any():
        raise ValueError("loss.class_weights=auto: the training labels hold no labelled pixel")
    freq = np.where(present, scan.class_pixels / np.maximum(scan.present_pixels, 1), 0.0)
    weights = np.where(present, np.median(freq[present]) / np.where(present, freq, 1.0), 1.0)
    absent = [n for n, p in zip(names, present) if not p]
    if absent:
        log.warning("loss.class_weights=auto: %s never appear in the training labels; weight 1", ", ".join(absent))
    return [float(w) for w in weights]


def class_weights(setting, dataset: SegmentationDataset, scan: MaskScan | None = None,
                  workers: int = 0) -> list[float] | None:
    """The CE weights `loss.class_weights` asks for: None (unweighted), `auto`, or one positive number per class.

    `scan` is a pass over the training labels already made (folder datasets are checked before
    training); without one, `auto` makes it.
    """
    names = dataset.classes.names
    if setting is None:
        return None
    if setting == "auto":
        weights = median_frequency_weights(scan or scan_labels(dataset, workers), names)
    elif isinstance(setting, list) and len(setting) == len(names) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in setting):
        weights = [float(w) for w in setting]
    else:
        raise ValueError(f"loss.class_weights must be auto or a list of {len(names)} positive numbers (one per "
                         f"class: {', '.join(names)}), got {setting!r}")
    log.info("CE class weights: %s", ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights)))
    return weights
