"""Reads for retraining: which items and labels a run learns from and is judged on."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet

from moderation.inference.models import ModelVersion
from moderation.media.models import MediaItem, Split
from moderation.review.labels import current_level
from moderation.review.models import Label
from rating_models.ratings import Rating

RATING_LEVELS = [r.level for r in Rating]
VALIDATION_SHARE = 15  # percent of training items held out for early stopping


def item_list_labelled(*, split: str) -> QuerySet[MediaItem]:
    """Items of a split whose current label is a rating, annotated `current_level`.

    Blocked labels are decisions, not ratings, and unlabelled items teach nothing: both are
    left out, and so are purged items (no content left) and items a correction superseded
    (their labels describe the old content; the correction is labelled on its own). The split
    is the item's, fixed when it was created, so a test item can never be selected for
    training however it was labelled.
    """
    return (
        MediaItem.objects.filter(split=split, purged_at__isnull=True, superseded_by__isnull=True)
        .annotate(current_level=current_level())
        .filter(current_level__in=RATING_LEVELS)
        .order_by("pk")
    )


def training_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TRAIN)


def test_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TEST)


def validation_bucket(uid: UUID | str) -> int:
    """0-99 from a hash of the item's uid: below VALIDATION_SHARE, held out."""
    return int(hashlib.sha256(f"{uid}/validation".encode()).hexdigest(), 16) % 100


def is_validation(uid: UUID | str) -> bool:
    """Whether a training item is held out for early stopping (chosen by a hash of its uid,
    so an item is on the same side in every run)."""
    return validation_bucket(uid) < VALIDATION_SHARE


def validation_split(uids: list[UUID | str]) -> list[bool]:
    """Which of these training items are held out: `is_validation`'s share, and at least one
    when there are two or more (a few dozen items can all hash above the share: 2% of 24
    items do), the one nearest the cut, so that early stopping always has rows."""
    held = [is_validation(uid) for uid in uids]
    if len(uids) > 1 and not any(held):
        held[min(range(len(uids)), key=lambda k: validation_bucket(uids[k]))] = True
    return held


def training_images() -> dict[str, Any]:
    """How many labelled training items have an image, how many of those a retrain fits on
    (the rest are held out for early stopping), and whether that is enough for the MLP to
    read the image expert (MIN_IMAGE_LABELS)."""
    uids = training_items().exclude(image="").values_list("uid", flat=True)
    labelled = fitted = 0
    for uid in uids.iterator(chunk_size=10_000):
        labelled += 1
        fitted += not is_validation(uid)
    return {
        "labelled": labelled,
        "fitted": fitted,
        "minimum": min_image_labels(),
        "mlp_reads_images": fitted >= min_image_labels(),
    }


def min_image_labels() -> int:
    """MIN_IMAGE_LABELS, at least 1 (the library's lower bound: 0 reads images from the first)."""
    return max(1, settings.MIN_IMAGE_LABELS)


def mlp_reads(version: ModelVersion | None) -> list[str] | None:
    """The experts the version's MLP reads, as its manifest records them; None when it does
    not (a bundle made before the MLP kept track: it reads every expert that speaks)."""
    if version is None:
        return None
    reads = ((version.manifest or {}).get("stacking") or {}).get("mlp_reads")
    return list(reads) if isinstance(reads, list) else None


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
