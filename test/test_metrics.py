"""Metrics against hand-computed values, with the official Cityscapes rules for ignored and absent classes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bisegunet_ros.classes import CITYSCAPES, IGNORE_INDEX
from bisegunet_ros.metrics import (ConfusionMatrix, confusion_matrix, dice_per_class, iou_per_class,
                                   mean_ignoring_nan, pixel_accuracy)

# 4 classes; (gt, pred) pixel pairs, plus 3 ignored pixels whose predictions must not count anywhere.
PAIRS = [(0, 0)] * 3 + [(0, 1)] + [(1, 0)] + [(1, 1)] * 2 + [(1, 3)] + [(IGNORE_INDEX, p) for p in (0, 1, 3)]
GT = np.array([g for g, _ in PAIRS], np.uint8).reshape(1, -1)
PRED = np.array([p for _, p in PAIRS], np.uint8).reshape(1, -1)
# rows = ground truth, columns = prediction. Class 2 is in neither; class 3 is only a false positive.
MATRIX = np.array([[3, 1, 0, 0],
                   [1, 2, 0, 1],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]])
NAMES = ["road", "car", "train", "bus"]


def test_confusion_matrix_counts_pairs_and_skips_ignored_pixels():
    cm = confusion_matrix(GT, PRED, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, MATRIX)


def test_hand_computed_scores():
    # class 0: TP 3, FP 1 (gt 1 -> 0), FN 1 (0 -> 1): IoU 3/5, Dice 6/8
    # class 1: TP 2, FP 1 (gt 0 -> 1), FN 2 (1 -> 0, 1 -> 3): IoU 2/5, Dice 4/7
    # class 2: TP + FP + FN = 0: NaN, left out of the means
    # class 3: TP 0, FP 1, FN 0: IoU 0, Dice 0, and it counts
    np.testing.assert_allclose(iou_per_class(MATRIX), [3 / 5, 2 / 5, np.nan, 0.0])
    np.testing.assert_allclose(dice_per_class(MATRIX), [6 / 8, 4 / 7, np.nan, 0.0])
    assert pixel_accuracy(MATRIX) == pytest.approx(5 / 8)
    summary = ConfusionMatrix(4, matrix=MATRIX).summary(NAMES)
    assert summary["miou"] == pytest.approx((3 / 5 + 2 / 5 + 0) / 3)          # 1/3, not 1/4
    assert summary["mean_dice"] == pytest.approx((6 / 8 + 4 / 7 + 0) / 3)     # 37/84
    assert summary["pixel_accuracy"] == pytest.approx(5 / 8)
    assert summary["iou"] == pytest.approx({"road": 0.6, "car": 0.4, "train": None, "bus": 0.0})
    assert summary["dice"]["train"] is None and summary["dice"]["bus"] == 0.0
    assert summary["pixels"] == 8
    assert summary["gt_pixels"] == {"road": 4, "car": 4, "train": 0, "bus": 0}
    assert summary["pred_pixels"] == {"road": 4, "car": 3, "train": 0, "bus": 1}


def test_accumulator_update_matches_the_hand_matrix():
    acc = ConfusionMatrix(4)
    acc.update(GT, PRED)
    np.testing.assert_array_equal(acc.matrix, MATRIX)


def test_mean_ignoring_nan():
    assert mean_ignoring_nan(np.array([0.5, np.nan, 0.0])) == 0.25
    assert math.isnan(mean_ignoring_nan(np.array([np.nan, np.nan])))


def test_identical_labels_score_one():
    gt = np.random.default_rng(0).integers(0, 19, (2, 24, 32)).astype(np.uint8)
    gt[:, :4] = IGNORE_INDEX
    pred = np.where(gt == IGNORE_INDEX, 0, gt)
    summary = ConfusionMatrix(19).summary()
    assert summary["miou"] is None and summary["pixel_accuracy"] is None   # nothing counted yet
    acc = ConfusionMatrix(19)
    acc.update(gt, pred)
    summary = acc.summary(CITYSCAPES.names)
    assert summary["miou"] == 1.0 and summary["mean_dice"] == 1.0 and summary["pixel_accuracy"] == 1.0
    assert summary["pixels"] == int((gt != IGNORE_INDEX).sum())


def test_confusion_matrix_equals_a_per_pixel_count():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, (20, 30)).astype(np.int32)
    gt[rng.random(gt.shape) < 0.2] = IGNORE_INDEX
    pred = rng.integers(0, 6, gt.shape)
    expected = np.zeros((6, 6), np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g != IGNORE_INDEX:
            expected[g, p] += 1
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 6), expected)


def test_merging_accumulators_equals_accumulating_the_concatenation():
    rng = np.random.default_rng(2)
    gts = [rng.integers(0, 5, (16, 16)).astype(np.uint8) for _ in range(2)]
    preds = [rng.integers(0, 5, (16, 16)).astype(np.uint8) for _ in range(2)]
    gts[1][:3] = IGNORE_INDEX
    parts = [ConfusionMatrix(5) for _ in range(2)]
    for part, gt, pred in zip(parts, gts, preds):
        part.update(gt, pred)
    whole = ConfusionMatrix(5)
    whole.update(np.concatenate(gts), np.concatenate(preds))
    added = parts[0] + parts[1]
    np.testing.assert_array_equal(added.matrix, whole.matrix)
    assert added.matrix is not parts[0].matrix
    reduced = ConfusionMatrix(5, matrix=parts[0].matrix + parts[1].matrix)   # e.g. after an all-reduce
    assert reduced.summary() == whole.summary()
    assert parts[0].merge(parts[1]) is parts[0]
    np.testing.assert_array_equal(parts[0].matrix, whole.matrix)


@pytest.mark.parametrize("gt, pred, message", [
    (np.array([0, 19, 40, 255]), np.zeros(4, int),
     r"ground truth \(besides ignore index 255\) has values \[19, 40\] outside 0..18"),
    (np.array([-1, 0]), np.zeros(2, int), r"ground truth .* has values \[-1\]"),
    (np.zeros(3, int), np.array([0, 255, 19]), r"prediction has values \[19, 255\] outside 0..18"),
    (np.zeros((2, 3), int), np.zeros((3, 2), int),
     r"ground truth shape \(2, 3\) differs from prediction shape \(3, 2\)"),
    (np.zeros(3), np.zeros(3, int), r"ground truth must hold integer class ids, got float64"),
])
def test_out_of_range_or_mismatched_labels_raise(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(gt, pred, 19)


def test_misuse_of_the_accumulator_raises():
    with pytest.raises(ValueError, match=r"ignore index 3 is a class id"):
        confusion_matrix(np.zeros(2, int), np.zeros(2, int), 4, ignore_index=3)
    with pytest.raises(ValueError, match=r"cannot merge a 5-class matrix"):
        ConfusionMatrix(4).merge(ConfusionMatrix(5))
    with pytest.raises(ValueError, match=r"matrix shape \(3, 3\) is not \(4, 4\)"):
        ConfusionMatrix(4, matrix=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"3 class names for 4 classes"):
        ConfusionMatrix(4).summary(NAMES[:3])


def test_predictions_outside_the_classes_are_misses_of_the_ground_truth_class():
    """As the official Cityscapes evaluation: FN for the ground-truth class, FP for no class."""
    pairs = [(0, 0)] * 2 + [(0, 255)] + [(1, 1), (1, 0), (1, 200)] + [(2, 2)] + [(IGNORE_INDEX, 255)]
    gt = np.array([g for g, _ in pairs], np.uint8).reshape(2, 4)
    pred = np.array([p for _, p in pairs], np.uint8).reshape(2, 4)
    acc = ConfusionMatrix(3)
    acc.update(gt, pred)
    np.testing.assert_array_equal(acc.matrix, [[2, 0, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(acc.unclassified, [1, 1, 0])
    # class 0: TP 2, FP 1 (gt 1 -> 0), FN 1 (-> 255): IoU 2/4, Dice 4/6
    # class 1: TP 1, FP 0, FN 2 (-> 0, -> 200): IoU 1/3, Dice 2/4
    # class 2: TP 1: IoU 1, Dice 1
    summary = acc.summary(["a", "b", "c"])
    assert summary["iou"] == pytest.approx({"a": 1 / 2, "b": 1 / 3, "c": 1.0})
    assert summary["dice"] == pytest.approx({"a": 4 / 6, "b": 2 / 4, "c": 1.0})
    assert summary["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert summary["pixel_accuracy"] == pytest.approx(4 / 7)
    assert summary["unclassified_pixels"] == 2 and summary["pixels"] == 7
    assert summary["pred_pixels"] == {"a": 3, "b": 1, "c": 1}
    assert summary["gt_pixels"] == {"a": 3, "b": 3, "c": 1}
    merged = acc + acc
    np.testing.assert_array_equal(merged.unclassified, [2, 2, 0])
    assert merged.summary()["miou"] == pytest.approx(summary["miou"])
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(gt, pred, 3)      # the bare matrix function stays strict
