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


def is_current(label_ref: str = "pk") -> Exists:
    """The condition "no label supersedes the label at `label_ref`", for a query on labels
    (`pk`) or on rows joined to a label (an `OuterRef` name such as `label_id`)."""
    return ~Exists(Label.objects.filter(supersedes=OuterRef(label_ref)))


def current_labels() -> QuerySet[Label]:
    """Every item's current label (at most one per item)."""
    return Label.objects.filter(is_current())


def label_get_current(*, item) -> Label | None:
    """The item's current label, with who wrote it, or None when it has none."""
    return current_labels().filter(item=item).select_related("moderator").first()


def current_level(item_ref: str = "pk") -> Subquery:
    """A subquery: the level of the current label of the item at `item_ref` (None if none)."""
    return Subquery(current_labels().filter(item=OuterRef(item_ref)).values("level")[:1])
