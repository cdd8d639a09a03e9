"""Metrics of predicted labels: what every model of the project reports (numpy only, no torch).

Classification: the paper reports the test error; its appendix fits 1 - F1 as a second metric, so
every result row carries accuracy, error and macro / weighted F1. Segmentation: the paper's error
is 1 - mIoU, its second metric 1 - mean class accuracy, both from one confusion matrix over every
pixel of the test set (:func:`pixel_confusion`, summed over batches), the void label ignored.
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


def pixel_confusion(pred: np.ndarray, target: np.ndarray, num_classes: int, void: int | None = None) -> np.ndarray:
    """The (num_classes, num_classes) pixel counts, rows the true class, columns the predicted one,
    of label maps of one shape; pixels whose target is ``void`` are left out. Sum these over the
    batches of a test set: mIoU is a ratio of totals, not a mean of per-image ratios."""
    pred, target = np.asarray(pred, dtype=np.int64), np.asarray(target, dtype=np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"predictions {pred.shape} and targets {target.shape} must be label maps of one shape")
    keep = target != void if void is not None else np.ones(target.shape, bool)
    t, p = target[keep], pred[keep]
    if t.size and (t.max() >= num_classes or t.min() < 0):
        raise ValueError(f"target labels must lie in 0..{num_classes - 1} (or be the void label {void}); "
                         f"found {int(t.min())}..{int(t.max())}")
    if p.size and (p.max() >= num_classes or p.min() < 0):
        raise ValueError(f"predicted labels must lie in 0..{num_classes - 1}, found {int(p.min())}..{int(p.max())}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: np.ndarray) -> dict:
    """mIoU and mean class accuracy of a pixel confusion matrix (:func:`pixel_confusion`), their
    errors, pixel accuracy and the per-class IoU. A class with no pixel in the targets nor the
    predictions has no IoU (NaN) and is left out of the means; ``classes_scored`` says how many counted."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    union = support + predicted - tp
    iou = np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    if not np.isfinite(iou).any():
        raise ValueError("the confusion matrix counts no pixel: nothing to score")
    miou, mean_acc = float(np.nanmean(iou)), float(np.nanmean(recall))
    return {"miou": miou, "error": 1.0 - miou, "mean_class_accuracy": mean_acc, "class_error": 1.0 - mean_acc,
            "pixel_accuracy": float(tp.sum() / cm.sum()), "iou_per_class": iou.tolist(),
            "classes_scored": int(np.isfinite(iou).sum())}


def segmentation_row(confusion: np.ndarray, class_names) -> dict:
    """A result row's scores of a segmentation model, from its pixel confusion matrix.

    The runner's columns are those of classification (:data:`results_integrity.SCORES`), read the
    paper's way for segmentation: ``error`` is 1 - mIoU and ``accuracy`` its complement, the mIoU
    (also in ``miou``); ``f1_macro`` and ``f1_weighted`` are the per-class pixel F1 (the Dice
    score) averaged over the scored classes and weighted by their pixels. The second metric of the
    paper's appendix, 1 - mean class accuracy, is ``class_error``; each class's IoU is ``iou_<name>``
    (empty where the class has no pixel in the targets nor the predictions)."""
    cm = np.asarray(confusion, dtype=np.float64)
    names = list(class_names)
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"a {cm.shape} confusion matrix needs {cm.shape[0]} class names, got {len(names)}")
    scores = segmentation_metrics(cm)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    denom = support + predicted
    dice = np.divide(2 * tp, denom, out=np.full_like(tp, np.nan), where=denom > 0)
    row = {"accuracy": scores["miou"], "error": scores["error"], "f1_macro": float(np.nanmean(dice)),
           "f1_weighted": float(np.nansum(dice * support) / support.sum()),
           **{k: v for k, v in scores.items() if k not in ("error", "iou_per_class")}}
    for name, iou in zip(names, scores["iou_per_class"]):
        row[f"iou_{name.lower().replace(' ', '_')}"] = None if np.isnan(iou) else float(iou)
    return row
