"""Label errors: stored ratings that the models' out-of-sample probabilities contradict.

Confident learning (Northcutt et al., "Confident Learning", JAIR 2021; `cleanlab`) counts, per
pair of ratings (given, likely), the items a model confidently puts in another rating than
their label, and flags that many of the least self-confident items of each pair. The
probabilities must be out of sample (out of fold, or from a model that never trained on the
items): a model rates its own training items as labelled, and then nothing is flagged.

A flagged item goes to a second look. The queue serves first the items whose label may let
explicit content slip down: by the *down-class risk*, the probability mass above the given
rating, P(true rating > label). An item labelled R that the model calls PG (an over-rating, a
nuisance) waits behind an item labelled PG that the model calls R, even when the first
contradicts its label more strongly. Ties go to the lower self-confidence (the probability of
the given rating). Cleanlab's own order, self-confidence alone, is `order="self_confidence"`.

No item is flagged as belonging to a rating that no item carries (confident learning has no
threshold for it), and a rating with a single item never loses it (cleanlab keeps at least
one item of each rating): with X and XXX as rare as they are, count them before trusting the
list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from cleanlab.filter import find_label_issues

from rating_models.ratings import LABELS, NUM_CLASSES
from rating_models.risk import mass_above

Order = Literal["down_class_risk", "self_confidence"]
ROW_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LabelIssue:
    """An item whose label the out-of-sample probabilities contradict (class indices)."""

    id: str
    given: int  # the stored label
    likely: int  # the most probable rating
    self_confidence: float  # P(given label)
    down_class_risk: float  # P(true rating > given label): the label lets it slip down


def find_label_errors(
    ids: Sequence[str],
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    order: Order = "down_class_risk",
) -> list[LabelIssue]:
    """The items confident learning flags as mislabelled, in the order a second look serves
    them: highest down-class risk first, then lowest self-confidence
    (`order="self_confidence"`: cleanlab's order, lowest self-confidence first).

    `labels` are class indices (N,), `probs` out-of-sample probabilities (N, 5); rows that do
    not sum to 1 are rescaled. No items, no issues. ValueError when fewer than two ratings
    are given (nothing to tell apart) or the inputs do not fit together.
    """
    if order not in ("down_class_risk", "self_confidence"):
        raise ValueError(f"order {order!r}: down_class_risk or self_confidence")
    labels = np.asarray(labels)
    probs = _normalised(np.asarray(probs, dtype=np.float64), len(labels))
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids for {len(labels)} labels")
    if len(labels) == 0:
        return []
    labels = _class_indices(labels)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(
            f"label errors need items of at least two ratings, every item is "
            f"{LABELS[present[0]]}: confident learning compares each rating with the others"
        )
    ranked = find_label_issues(
        labels,
        probs,
        return_indices_ranked_by="self_confidence",
        # In one process: the flagging is cheap at our sizes, and forking inside a Celery
        # worker or a test run buys nothing but risk.
        n_jobs=1,
    )
    rows = np.arange(len(labels))
    self_confidence = probs[rows, labels]
    down_class_risk = mass_above(probs)[rows, labels]
    if order == "down_class_risk":
        # Stable on cleanlab's order, so exact ties keep its ranking.
        ranked = sorted(ranked, key=lambda i: (-down_class_risk[i], self_confidence[i]))
    return [
        LabelIssue(
            id=str(ids[i]),
            given=int(labels[i]),
            likely=int(probs[i].argmax()),
            self_confidence=float(self_confidence[i]),
            down_class_risk=float(down_class_risk[i]),
        )
        for i in ranked
    ]


# -- how well a pass finds errors: plant some, count how many come back ---------------------


def plant_label_errors(
    labels: np.ndarray, n: int, *, from_ratings: Sequence[int], to: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `labels` with `n` items, drawn among those rated `from_ratings`, relabelled
    `to`; and the rows changed. Planting down-class errors (an R, X or XXX item relabelled
    PG) measures the pass on the errors that matter before its list on real labels is
    trusted."""
    labels = np.asarray(labels)
    candidates = np.flatnonzero(np.isin(labels, list(from_ratings)))
    if n > len(candidates):
        raise ValueError(f"{n} errors to plant, only {len(candidates)} items rated as asked")
    rows = np.sort(np.random.default_rng(seed).choice(candidates, size=n, replace=False))
    planted = labels.copy()
    planted[rows] = to
    return planted, rows


def recall_at(issues: Sequence[LabelIssue], planted: set[str], k: int) -> float:
    """The share of the `planted` ids among the first `k` issues of the list."""
    if not planted:
        raise ValueError("no planted errors to find")
    return len({i.id for i in issues[:k]} & planted) / len(planted)


def _normalised(probs: np.ndarray, n: int) -> np.ndarray:
    """(n, 5) probabilities whose rows sum to 1; ValueError for what cannot be rescaled."""
    if probs.shape != (n, NUM_CLASSES):
        raise ValueError(f"probs must be ({n}, {NUM_CLASSES}) for {n} labels, got {probs.shape}")
    if n == 0:
        return probs
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probs must be finite and non-negative")
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        first = int(np.flatnonzero(sums[:, 0] <= 0)[0])
        raise ValueError(f"probs row {first} sums to 0: it says nothing about any rating")
    # Float16 storage and some calibrations leave rows a little off 1; cleanlab's thresholds
    # compare probabilities across items, so every row must be on the same scale.
    if np.abs(sums - 1.0).max() > ROW_SUM_TOLERANCE:
        probs = probs / sums
    return probs


def _class_indices(labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1:
        raise ValueError(f"labels must be one class index per item, got shape {labels.shape}")
    whole = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and (labels == np.round(labels)).all()
    )
    if not whole:
        raise ValueError(f"labels must be class indices 0-{NUM_CLASSES - 1}")
    labels = labels.astype(np.int64)
    outside = (labels < 0) | (labels >= NUM_CLASSES)
    if outside.any():
        raise ValueError(
            f"labels must be class indices 0-{NUM_CLASSES - 1}, got {labels[outside][0]}"
        )
    return labels
