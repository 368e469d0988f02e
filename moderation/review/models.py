"""The review queue (one state row per item) and the labels moderators write."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ReviewState(models.Model):
    """Where an item stands in the queue.

    `priority` is the down-class risk computed by `review.queue.priority` from the champion's
    prediction: higher is reviewed first.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        CLAIMED = "claimed", "claimed"
        DONE = "done", "done"

    item = models.OneToOneField("media.MediaItem", on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=7, choices=State.choices, default=State.QUEUED)
    priority = models.FloatField(default=0.0)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The claim query: open items by risk, then age. Partial, because the claim asks
            # for "queued, or claimed with an expired claim": an index led by `state` cannot
            # give that OR in priority order, and PostgreSQL sorted the whole table for every
            # claim (bench/results/queue_explain.txt). Done items, most of the table in time,
            # leave this index.
            models.Index(
                fields=["-priority", "item"],
                condition=models.Q(state__in=["queued", "claimed"]),
                name="review_queue_open",
            ),
            models.Index(fields=["state", "claimed_until"], name="review_claim_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.state}"


class Skip(models.Model):
    """A moderator passed on an item: it goes to others and stays away from them a while."""

    item = models.ForeignKey("media.MediaItem", on_delete=models.CASCADE, related_name="skips")
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    until = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["moderator", "until"])]

    def __str__(self) -> str:
        return f"{self.item_id} skipped by {self.moderator_id} until {self.until:%Y-%m-%d %H:%M}"


class Label(models.Model):
    """A moderator's decision. Append-only: a correction is a new label that supersedes.

    `level` is a rating level (1, 2, 4, 8, 16) or 32 for Blocked. The item's current label is
    its latest one; nothing is ever updated in place, so who said what, when, survives.
    """

    BLOCKED = 32

    item = models.ForeignKey("media.MediaItem", on_delete=models.CASCADE, related_name="labels")
    level = models.PositiveSmallIntegerField()
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="labels",
    )
    # Where the label came from when no moderator wrote it ("corpus", "civitai").
    origin = models.CharField(max_length=50, default="moderator")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    prediction = models.ForeignKey(
        "inference.Prediction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agreed_with_voter = models.BooleanField(null=True)
    agreed_with_mlp = models.BooleanField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["item", "-created_at"]),
            # Explicit (X, XXX) labels are rare: the dashboard's severe list finds them here
            # instead of reading every label.
            models.Index(fields=["level"], name="review_label_level"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level__in=[1, 2, 4, 8, 16, 32]), name="label_level_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: level {self.level} by {self.moderator_id or self.origin}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("labels are append-only: write a new label that supersedes this one")
        super().save(*args, **kwargs)

    @property
    def is_blocked(self) -> bool:
        return self.level == self.BLOCKED
