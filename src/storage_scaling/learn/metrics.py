"""Classification metrics of predicted labels: what every model of the project reports.

The paper reports the test error; its appendix fits 1 - F1 as a second metric, so every result
row carries accuracy, error and macro / weighted F1 (numpy only, no torch).
"""

from __future__ import annotations

import numpy as np


def classification_metrics(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Accuracy, error and macro / weighted F1 (over the classes present in labels or predictions)."""
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    cm = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = denom > 0
    accuracy = float(tp.sum() / len(labels))
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "f1_macro": float(f1[present].mean()),
        "f1_weighted": float((f1 * support).sum() / support.sum()),
    }
