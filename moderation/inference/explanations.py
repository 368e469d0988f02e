"""Why the champion rated each item as it did, computed in the worker with its prediction and
stored with it (`Prediction.explanation`): the review page reads it and computes nothing.

The costly part (occlusion of words and tags for the neural experts) gets EXPLANATION_BUDGET
times as long as the batch's prediction took (by default as long, so that a worker rates at
least half as many items a second with explanations as without: bench/inference.py), and
runs only on items a moderator will see: open in the review queue, and not published by the
bundle's rule without one. The rest keep the cheap explanations (tag rules, n-gram) and are
marked partial (`rating_models.explain`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from django.conf import settings

from moderation.media.models import MediaItem
from moderation.review.models import ReviewState
from rating_models.bundle import Bundle, BundlePrediction
from rating_models.examples import Example
from rating_models.explain import explain

log = logging.getLogger(__name__)


def explanations_compute(
    *,
    bundle: Bundle,
    rated: Sequence[tuple[MediaItem, BundlePrediction, int]],
    examples: dict[int, Example],
    predict_seconds: float,
) -> dict[int, dict | None]:
    """Each rated item's explanation by item pk, from the predictions that rated them (the
    whole batch's, or one per item when the batch had to be rated item by item).

    An explanation is never worth a rating: should it fail, the item's is None (not
    computed), logged, and its prediction is stored all the same.
    """
    deadline = time.perf_counter() + settings.EXPLANATION_BUDGET * predict_seconds
    seen = _items_seen_by_moderators([item.pk for item, _, _ in rated])
    batches: dict[int, tuple[BundlePrediction, list[tuple[MediaItem, int]]]] = {}
    for item, prediction, row in rated:
        batches.setdefault(id(prediction), (prediction, []))[1].append((item, row))
    found: dict[int, dict | None] = {}
    for prediction, members in batches.values():
        items = [item for item, _ in members]
        part = prediction.take([row for _, row in members])
        queued = np.array([item.pk in seen for item in items], dtype=bool)
        if part.auto_publish is not None:
            queued &= ~part.auto_publish
        try:
            explained = explain(
                bundle,
                [examples[item.pk] for item in items],
                part,
                budget_seconds=max(0.0, deadline - time.perf_counter()),
                queued=queued,
            )
        except Exception:
            log.exception(
                "explaining %d items failed: their predictions are stored without", len(items)
            )
            explained = [None] * len(items)
        found.update(
            (item.pk, explanation) for item, explanation in zip(items, explained, strict=True)
        )
    return found


def _items_seen_by_moderators(item_ids: list[int]) -> set[int]:
    """The items open in the review queue (queued, or claimed)."""
    open_states = (ReviewState.State.QUEUED, ReviewState.State.CLAIMED)
    return set(
        ReviewState.objects.filter(item_id__in=item_ids, state__in=open_states).values_list(
            "item_id", flat=True
        )
    )
