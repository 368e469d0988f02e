"""Reads of media items."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from moderation.inference.models import Prediction
from moderation.media.models import ApiClient, MediaItem
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


def _visible(items: QuerySet[MediaItem], client: ApiClient | None) -> QuerySet[MediaItem]:
    """The items a client may read: its own, or every one for a client that `sees_all`
    (None: not a client, the project's own code)."""
    if client is None or client.sees_all:
        return items
    return items.filter(client=client)


def item_get(*, uid: uuid.UUID, client: ApiClient | None = None) -> MediaItem | None:
    """The item with its review state, predictions and labels, or None (also when it is not
    the client's to read)."""
    return _with_history(_visible(MediaItem.objects.filter(uid=uid), client)).first()


def item_list(*, state: str | None = None, client: ApiClient | None = None) -> QuerySet[MediaItem]:
    """Items newest first, optionally only those in one review state, that `client` may read."""
    items = _visible(MediaItem.objects.order_by("-received_at", "-pk"), client)
    if state is not None:
        items = items.filter(review__state=state)
    return _with_history(items)
