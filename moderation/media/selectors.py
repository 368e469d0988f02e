"""Reads of media items."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from moderation.inference.models import Prediction
from moderation.media.models import MediaItem
from moderation.review.labels import current_labels
from moderation.review.models import Label


def _with_history(items: QuerySet[MediaItem]) -> QuerySet[MediaItem]:
    return items.select_related("review").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.select_related("model_version")),
        Prefetch("labels", queryset=Label.objects.select_related("moderator")),
        Prefetch(
            "labels",
            queryset=current_labels().select_related("moderator"),
            to_attr="current_label_list",
        ),
    )


def item_get(*, uid: uuid.UUID) -> MediaItem | None:
    """The item with its review state, predictions and labels, or None."""
    return _with_history(MediaItem.objects.filter(uid=uid)).first()


def item_list(*, state: str | None = None) -> QuerySet[MediaItem]:
    """Items newest first, optionally only those in one review state."""
    items = MediaItem.objects.order_by("-received_at", "-pk")
    if state is not None:
        items = items.filter(review__state=state)
    return _with_history(items)
