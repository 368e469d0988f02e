"""Metrics for ratings, with the error that matters first: down-class misclassification.

A down-class misclassification (DCM) rates an item lower than its true rating: explicit content
shown to people who opted out of it. Severe DCM is a true X or XXX rated PG or PG13.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from rating_models.ratings import EXPLICIT, LABELS, MILD, NUM_CLASSES

CLASSES = list(range(NUM_CLASSES))
_EXPLICIT = [r.index for r in EXPLICIT]
_MILD = [r.index for r in MILD]


def rating_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    """Every figure a rating model is judged by, as plain JSON-ready values.

    Classes are indices (PG 0 ... XXX 4). Per-class accuracy is the share of the class's items
    rated correctly (its recall), as moderation reports use it. `dcm_rate` is over all items;
    `severe_dcm_rate` over the items whose true rating is X or XXX (None when there are none).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true ratings but {len(y_pred)} predictions")
    if np.any((y_pred < 0) | (y_pred >= NUM_CLASSES)) or np.any(
        (y_true < 0) | (y_true >= NUM_CLASSES)
    ):
        raise ValueError("ratings must be class indices 0-4 (abstentions removed first)")
    n = len(y_true)
    if n == 0:  # an expert that abstained on every item: figures exist but say nothing
        precision = recall = f1 = np.zeros(NUM_CLASSES)
        support = np.zeros(NUM_CLASSES, dtype=np.int64)
    else:
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=CLASSES, zero_division=0
        )
    confusion = (
        confusion_matrix(y_true, y_pred, labels=CLASSES)
        if n
        else np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    )
    down = np.tril(confusion, k=-1)  # rows true, columns predicted: below the diagonal is DCM
    explicit = np.isin(y_true, _EXPLICIT)
    severe = int(np.sum(explicit & np.isin(y_pred, _MILD)))
    dcm = int(down.sum())
    return {
        "n": n,
        "accuracy": float(accuracy_score(y_true, y_pred)) if n else None,
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=CLASSES, average="macro", zero_division=0)
        )
        if n
        else None,
        "per_class": {
            LABELS[c]: {
                "precision": float(precision[c]) if n else None,
                "recall": float(recall[c]) if n else None,
                "f1": float(f1[c]) if n else None,
                "accuracy": float(recall[c]) if support[c] else None,
                "support": int(support[c]),
            }
            for c in CLASSES
        },
        "confusion": confusion.tolist(),
        "dcm_count": dcm,
        "dcm_rate": dcm / n if n else None,
        "dcm_matrix": down.tolist(),
        "severe_dcm_count": severe,
        "severe_dcm_rate": severe / int(explicit.sum()) if explicit.any() else None,
        "explicit_support": int(explicit.sum()),
    }


def bootstrap_intervals(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals for macro-F1, the DCM rate and the severe DCM rate.

    Explicit items are rare (ten in a test split of 1,700 is usual), so a point figure can move
    by a whole item's worth; the interval says how far. Items are resampled with replacement;
    a resample without explicit items has no severe rate and is left out of that interval.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return {"macro_f1": None, "dcm_rate": None, "severe_dcm_rate": None}
    rng = np.random.default_rng(seed)
    n = len(y_true)
    explicit = np.isin(y_true, _EXPLICIT)
    slipped = explicit & np.isin(y_pred, _MILD)
    down = y_pred < y_true
    cell = y_true * NUM_CLASSES + y_pred  # the item's cell of the confusion matrix
    f1s, dcm, severe = [], [], []
    # Resamples in blocks (one call of sklearn's f1_score per resample cost milliseconds):
    # every figure comes from the block's confusion counts, the same numbers sklearn computes.
    block = max(1, 4_000_000 // n)
    for start in range(0, samples, block):
        size = min(block, samples - start)
        rows = np.stack([rng.integers(0, n, size=n) for _ in range(size)])  # (S, n)
        offsets = np.arange(size)[:, None] * NUM_CLASSES**2
        counts = np.bincount((cell[rows] + offsets).ravel(), minlength=size * NUM_CLASSES**2)
        counts = counts.reshape(size, NUM_CLASSES, NUM_CLASSES)  # (S, true, predicted)
        # Per class F1 = 2 tp / (true + predicted), 0 for a class with neither (as sklearn's
        # zero_division=0); macro-F1 averages all five classes.
        tp = np.diagonal(counts, axis1=1, axis2=2)
        both = counts.sum(axis=2) + counts.sum(axis=1)
        f1 = np.divide(2 * tp, both, out=np.zeros(both.shape), where=both > 0)
        f1s.extend(f1.mean(axis=1))
        dcm.extend(down[rows].mean(axis=1))
        explicit_counts, slipped_counts = explicit[rows].sum(axis=1), slipped[rows].sum(axis=1)
        spoke = explicit_counts > 0
        severe.extend(slipped_counts[spoke] / explicit_counts[spoke])
    tail = (1 - confidence) / 2 * 100

    def interval(values: list[float]) -> list[float] | None:
        if not values:
            return None
        low, high = np.percentile(values, [tail, 100 - tail])
        return [float(low), float(high)]

    return {
        "macro_f1": interval(f1s),
        "dcm_rate": interval(dcm),
        "severe_dcm_rate": interval(severe),
    }


def model_report(y_true: np.ndarray, y_pred: np.ndarray, bootstrap: int = 0) -> dict[str, Any]:
    """`rating_report`, with `intervals` from `bootstrap` resamples when it is above 0."""
    report = rating_report(y_true, y_pred)
    if bootstrap:
        report["intervals"] = bootstrap_intervals(y_true, y_pred, samples=bootstrap)
    return report
