"""The one definition of an item's current label, which every reader uses: training and test
rows, live figures, the gate, data fingerprints, the review page and the API.

The current label is the final label no other label supersedes. Only a final decision writes
a label (`review.decisions`), and each new label supersedes the item's current one (one first
label per item, and `supersedes` is unique), so an item has at most one. A pending decision
writes no label: it changes none of the readers.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from moderation.review.models import Label


def is_current(label_ref: str) -> Exists:
    """The condition "no label supersedes the label at `label_ref`", for rows joined to a
    label (an `OuterRef` name such as `label_id`)."""
    return ~Exists(Label.objects.filter(supersedes=OuterRef(label_ref)))


def current_labels() -> QuerySet[Label]:
    """Every item's current label (at most one per item): the labels no label supersedes,
    an anti-join on the unique `supersedes` (the same rule as `is_current`)."""
    return Label.objects.filter(superseded_by__isnull=True)


def label_get_current(*, item, with_moderator: bool = True) -> Label | None:
    """The item's current label (with who wrote it, unless `with_moderator` is False), or
    None when it has none. Newest first only to read it along the (item, created_at) index:
    there is at most one."""
    labels = current_labels().filter(item=item)
    if with_moderator:
        labels = labels.select_related("moderator")
    return labels.order_by("-created_at").first()


def current_level(item_ref: str = "pk") -> Subquery:
    """A subquery: the level of the current label of the item at `item_ref` (None if none)."""
    return Subquery(current_labels().filter(item=OuterRef(item_ref)).values("level")[:1])
