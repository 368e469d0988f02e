"""Reads for the health page's list of items whose rating failed (an unreadable image, an item
the bundle cannot rate): they wait for an admin's retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.urls import reverse

from moderation.inference.models import RatingDispatch


@dataclass(frozen=True)
class FailedItem:
    uid: UUID
    prompt: str
    failure: str
    failed_at: datetime
    attempts: int
    history_url: str


def rating_failure_list(*, limit: int) -> tuple[list[FailedItem], int]:
    """The newest `limit` failed items, and how many there are in all (counted only when the
    list is full; both read the partial index of failed rows)."""
    failed = RatingDispatch.objects.filter(failed_at__isnull=False)
    rows = (
        failed.select_related("item")
        .only("failed_at", "failure", "attempts", "item__uid", "item__prompt")
        .order_by("-failed_at", "-item_id")[:limit]
    )
    items = [
        FailedItem(
            uid=row.item.uid,
            prompt=row.item.prompt,
            failure=row.failure,
            failed_at=row.failed_at,
            attempts=row.attempts,
            history_url=reverse("review:history", args=[row.item.uid]),
        )
        for row in rows
    ]
    return items, len(items) if len(items) < limit else failed.count()
