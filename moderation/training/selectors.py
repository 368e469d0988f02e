"""Reads for retraining: which items and labels a run learns from and is judged on."""

from __future__ import annotations

import hashlib

from django.db.models import OuterRef, QuerySet, Subquery

from moderation.media.models import MediaItem, Split
from moderation.review.models import Label
from rating_models.ratings import Rating

RATING_LEVELS = [r.level for r in Rating]


def item_list_labelled(*, split: str) -> QuerySet[MediaItem]:
    """Items of a split whose current (latest) label is a rating, annotated `current_level`.

    Blocked labels are decisions, not ratings, and unlabelled items teach nothing: both are
    left out. The split is the item's, fixed when it was created, so a test item can never be
    selected for training however it was labelled.
    """
    latest = Label.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-pk")
    return (
        MediaItem.objects.filter(split=split)
        .annotate(current_level=Subquery(latest.values("level")[:1]))
        .filter(current_level__in=RATING_LEVELS)
        .order_by("pk")
    )


def training_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TRAIN)


def test_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TEST)


def labels_fingerprint(items: list[MediaItem]) -> str:
    """A digest of exactly what a run learns from or is judged on: items and their labels."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.uid}:{item.current_level}\n".encode())
    return digest.hexdigest()


def new_training_label_count(*, since) -> int:
    """Moderators' labels on training-split items written after `since` (None: ever)."""
    labels = Label.objects.filter(item__split=Split.TRAIN, moderator__isnull=False)
    if since is not None:
        labels = labels.filter(created_at__gt=since)
    return labels.count()
