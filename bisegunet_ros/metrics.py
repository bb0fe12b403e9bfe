"""Segmentation metrics from one confusion matrix, shared by training validation, the rosbag evaluator and benchmarks.

Everything is derived from a single num_classes x num_classes matrix (rows: ground truth, columns:
prediction) so that numbers from different tools agree and partial results add up across frames
and processes. Definitions follow the official Cityscapes pixel-level evaluation
(cityscapesScripts ``evaluation/evalPixelLevelSemanticLabeling.py``):

- pixels whose ground truth is the ignore index are not counted at all;
- per class c: TP = cm[c, c], FP = column sum - TP, FN = row sum - TP;
- IoU_c = TP / (TP + FP + FN); Dice_c = 2 TP / (2 TP + FP + FN);
- a class with TP + FP + FN == 0 (in neither ground truth nor prediction) has NaN scores and is
  left out of the means (``getScoreAverage`` skips NaN). A class absent from the ground truth but
  predicted somewhere has IoU 0 and does count;
- a prediction outside the model's classes (e.g. 255, "void", as some segmentation nodes publish)
  is a miss for its ground-truth class: a false negative there, a false positive nowhere (the
  official evaluation's FN is the whole ground-truth row, its FP only the evaluated classes'
  column). ConfusionMatrix keeps these per ground-truth class in `unclassified`;
- pixel accuracy = trace / total of counted pixels (unclassified ones included).

See docs/metrics.md for a worked example.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .classes import IGNORE_INDEX


def _check_range(name: str, values: np.ndarray, num_classes: int) -> None:
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = np.unique(values[(values < 0) | (values >= num_classes)])
        raise ValueError(f"{name} has values {bad[:10].tolist()} outside 0..{num_classes - 1}")


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Pixels whose ground truth is `ignore_index` are skipped. Any other value outside
    0..num_classes-1, in ground truth or prediction, raises ValueError: silently dropping it would
    bias every score (ConfusionMatrix.update counts predictions >= num_classes as misses instead).
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    for name, values in (("ground truth", gt), ("prediction", pred)):
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class ids, got {values.dtype}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(f"ignore index {ignore_index} is a class id (num_classes {num_classes})")
    _check_range("prediction", pred, num_classes)
    valid = gt != ignore_index
    gt_valid = gt[valid]
    _check_range(f"ground truth (besides ignore index {ignore_index})", gt_valid, num_classes)
    flat = gt_valid.astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).astype(np.int64).reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def _tp_fp_fn(cm: np.ndarray, unclassified: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp + (0 if unclassified is None else np.asarray(unclassified))
    return tp, cm.sum(axis=0) - tp, fn


def iou_per_class(cm: np.ndarray, unclassified: np.ndarray | None = None) -> np.ndarray:
    """TP / (TP + FP + FN) per class; NaN for a class in neither ground truth nor prediction.

    `unclassified[c]`: pixels of ground-truth class c predicted as no class (false negatives of c)."""
    tp, fp, fn = _tp_fp_fn(cm, unclassified)
    return _ratio(tp, tp + fp + fn)


def dice_per_class(cm: np.ndarray, unclassified: np.ndarray | None = None) -> np.ndarray:
    """2 TP / (2 TP + FP + FN) per class; NaN for a class in neither ground truth nor prediction."""
    tp, fp, fn = _tp_fp_fn(cm, unclassified)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def pixel_accuracy(cm: np.ndarray, unclassified: np.ndarray | None = None) -> float:
    """Correct / counted pixels (ignored pixels are not counted, unclassified ones are); NaN when none."""
    total = cm.sum() + (0 if unclassified is None else int(np.sum(unclassified)))
    return float(np.trace(cm) / total) if total else math.nan


def mean_ignoring_nan(values: np.ndarray) -> float:
    """Mean over the non-NaN entries (Cityscapes' getScoreAverage); NaN when there are none."""
    values = np.asarray(values, np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class ConfusionMatrix:
    """Accumulates counts over frames. Reduce across processes by summing `.matrix` and `.unclassified`
    (or with `+`).

    `unclassified[c]` counts pixels of ground-truth class c whose prediction is no class of the
    model (>= num_classes, e.g. 255 "void"): misses of c, false positives of no class.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, matrix: np.ndarray | None = None,
                 unclassified: np.ndarray | None = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64) if matrix is None else np.array(matrix, np.int64)
        if self.matrix.shape != (num_classes, num_classes):
            raise ValueError(f"matrix shape {self.matrix.shape} is not ({num_classes}, {num_classes})")
        self.unclassified = (np.zeros(num_classes, np.int64) if unclassified is None
                             else np.array(unclassified, np.int64))
        if self.unclassified.shape != (num_classes,):
            raise ValueError(f"unclassified shape {self.unclassified.shape} is not ({num_classes},)")

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame (or a batch of equal-shape frames); predictions >= num_classes are unclassified."""
        gt, pred = np.asarray(gt), np.asarray(pred)
        outside = pred >= self.num_classes if np.issubdtype(pred.dtype, np.integer) else np.zeros(pred.shape, bool)
        if outside.any() and gt.shape == pred.shape:
            gt_missed = gt[outside & (gt != self.ignore_index)]
            _check_range(f"ground truth (besides ignore index {self.ignore_index})", gt_missed, self.num_classes)
            self.unclassified += np.bincount(gt_missed.astype(np.int64), minlength=self.num_classes)
            gt, pred = gt[~outside], pred[~outside]
        self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add `other`'s counts to this one in place; returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                             f"{self.num_classes}-class one (ignore {self.ignore_index})")
        self.matrix += other.matrix
        self.unclassified += other.unclassified
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, self.ignore_index, self.matrix, self.unclassified).merge(other)

    def summary(self, class_names: Sequence[str] | None = None) -> dict:
        """JSON-ready scores; undefined values (absent classes, empty matrix) are None.

        Keys: miou, mean_dice, pixel_accuracy, iou and dice (name -> value), pixels (counted),
        gt_pixels and pred_pixels (name -> count), unclassified_pixels (predicted as no class; in
        pixels and gt_pixels, not in pred_pixels). Names default to the class ids as strings.
        """
        names = [str(i) for i in range(self.num_classes)] if class_names is None else list(class_names)
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        iou, dice = iou_per_class(self.matrix, self.unclassified), dice_per_class(self.matrix, self.unclassified)
        return {
            "miou": _none_if_nan(mean_ignoring_nan(iou)),
            "mean_dice": _none_if_nan(mean_ignoring_nan(dice)),
            "pixel_accuracy": _none_if_nan(pixel_accuracy(self.matrix, self.unclassified)),
            "iou": {name: _none_if_nan(v) for name, v in zip(names, iou)},
            "dice": {name: _none_if_nan(v) for name, v in zip(names, dice)},
            "pixels": int(self.matrix.sum() + self.unclassified.sum()),
            "gt_pixels": dict(zip(names, (self.matrix.sum(axis=1) + self.unclassified).tolist())),
            "pred_pixels": dict(zip(names, self.matrix.sum(axis=0).tolist())),
            "unclassified_pixels": int(self.unclassified.sum()),
        }
