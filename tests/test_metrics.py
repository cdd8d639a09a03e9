"""Classification metrics: accuracy, error and F1 checked by hand."""

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
