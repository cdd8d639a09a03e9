"""Metrics checked by hand: accuracy, error and F1; mIoU and mean class accuracy with void ignored."""

import numpy as np
import pytest

from storage_scaling.learn import metrics


def test_classification_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    m = metrics.classification_metrics(pred, labels, 3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["error"] == pytest.approx(2 / 6)
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 1 / (2 + 1)]
    assert m["f1_macro"] == pytest.approx(np.mean(f1))
    assert m["f1_weighted"] == pytest.approx(np.mean(f1))


def test_f1_averages_over_the_classes_present_weighted_by_support():
    labels = np.array([0, 0, 0, 1])  # class 2 never occurs nor is predicted: not in the macro mean
    pred = np.array([0, 0, 1, 1])
    m = metrics.classification_metrics(pred, labels, 3)
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (1 + 2)]
    assert m["f1_macro"] == pytest.approx(np.mean(f1))
    assert m["f1_weighted"] == pytest.approx((3 * f1[0] + 1 * f1[1]) / 4)
    assert m["accuracy"] == pytest.approx(0.75)


def test_segmentation_metrics_by_hand_with_void_ignored():
    # 3 classes, void = 9. Targets / predictions of two 2x3 maps:
    target = np.array([[[0, 0, 1], [1, 2, 9]], [[2, 2, 0], [9, 1, 1]]])
    pred = np.array([[[0, 1, 1], [1, 2, 0]], [[2, 0, 0], [2, 1, 2]]])
    cm = metrics.pixel_confusion(pred[:1], target[:1], 3, void=9) + metrics.pixel_confusion(pred[1:], target[1:], 3, void=9)
    # kept pixels (void dropped): (0,0) (0,1) (1,1) (1,1) (2,2) | (2,2) (2,0) (0,0) (1,1) (1,2)
    assert cm.tolist() == [[2, 1, 0], [0, 3, 1], [1, 0, 2]]
    m = metrics.segmentation_metrics(cm)
    # IoU: class 0: 2 / (3 + 3 - 2) = 0.5; class 1: 3 / (4 + 4 - 3) = 0.6; class 2: 2 / (3 + 3 - 2) = 0.5
    assert m["iou_per_class"] == pytest.approx([0.5, 0.6, 0.5]) and m["miou"] == pytest.approx(1.6 / 3)
    assert m["error"] == pytest.approx(1 - 1.6 / 3)
    # recall: 2/3, 3/4, 2/3
    assert m["mean_class_accuracy"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert m["pixel_accuracy"] == pytest.approx(7 / 10) and m["classes_scored"] == 3


def test_segmentation_metrics_leave_out_an_absent_class_and_refuse_bad_labels():
    cm = metrics.pixel_confusion(np.array([[0, 1]]), np.array([[0, 1]]), 4)
    m = metrics.segmentation_metrics(cm)
    assert m["classes_scored"] == 2 and m["miou"] == 1.0 and np.isnan(m["iou_per_class"][3])
    with pytest.raises(ValueError, match="target labels must lie in 0..3"):
        metrics.pixel_confusion(np.array([[0, 1]]), np.array([[0, 7]]), 4)
    with pytest.raises(ValueError, match="one shape"):
        metrics.pixel_confusion(np.zeros((2, 2)), np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="counts no pixel"):
        metrics.segmentation_metrics(np.zeros((3, 3)))


def test_a_segmentation_row_reads_the_scores_the_papers_way():
    cm = np.array([[2, 1, 0], [0, 3, 1], [1, 0, 2]])  # the matrix of the hand-computed case above
    row = metrics.segmentation_row(cm, ["Sky", "road", "car"])
    assert row["accuracy"] == pytest.approx(1.6 / 3) and row["error"] == pytest.approx(1 - 1.6 / 3)
    assert row["accuracy"] + row["error"] == pytest.approx(1.0) and row["miou"] == row["accuracy"]
    dice = [2 * 2 / (3 + 3), 2 * 3 / (4 + 4), 2 * 2 / (3 + 3)]  # 2 tp / (support + predicted)
    assert row["f1_macro"] == pytest.approx(np.mean(dice))
    assert row["f1_weighted"] == pytest.approx((3 * dice[0] + 4 * dice[1] + 3 * dice[2]) / 10)
    assert row["class_error"] == pytest.approx(1 - np.mean([2 / 3, 3 / 4, 2 / 3]))
    assert (row["iou_sky"], row["iou_road"], row["iou_car"]) == pytest.approx((0.5, 0.6, 0.5))
    absent = metrics.segmentation_row(np.array([[4, 0], [0, 0]]), ["sky", "car"])  # no car pixel anywhere
    assert absent["iou_car"] is None and absent["miou"] == 1.0 and absent["classes_scored"] == 1
    with pytest.raises(ValueError, match="needs 3 class names, got 2"):
        metrics.segmentation_row(cm, ["sky", "road"])
