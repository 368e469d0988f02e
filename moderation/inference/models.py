"""Model versions (one row per rating bundle), the predictions they made, and where each
item's rating stands until it is stored (its dispatch lease, or its failure)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CHAMPION = "champion", "champion"
        CANDIDATE = "candidate", "candidate"
        # Champion before: an admin may roll back to it. Retired: never serves again.
        FORMER = "former", "former champion"
        RETIRED = "retired", "retired"

    version = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=500)
    manifest = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Workers, the API and the queue must agree on one champion at any instant.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="champion"), name="one_champion"
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"


class Prediction(models.Model):
    """Everything one bundle said about one item. Written once: the pair is unique, and a
    trigger refuses UPDATE and DELETE (migration 0004).

    Ratings are stored as levels (1, 2, 4, 8, 16); None is an abstention. `features` holds
    every expert's pre-logit features as float16, concatenated in the bundle's expert order
    (sizes in the version's manifest), so the MLP retrains without re-running the experts.
    `mlp_experts` names the experts whose features the MLP read: not those that abstained, nor
    those the MLP was never trained with (the image expert until enough labelled images).
    """

    item = models.ForeignKey(
        "media.MediaItem", on_delete=models.PROTECT, related_name="predictions"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    # {expert name: {"rating": level or None, "probs": [5 floats] or None}}
    experts = models.JSONField()
    voter_rating = models.PositiveSmallIntegerField(null=True)
    mlp_rating = models.PositiveSmallIntegerField()
    mlp_probs = models.JSONField()
    suggested_rating = models.PositiveSmallIntegerField()
    flagged = models.BooleanField(default=False)
    features = models.BinaryField()
    # [expert name, ...] in the bundle's expert order
    mlp_experts = models.JSONField(default=list)
    # Whether the bundle's bounded rule would publish this rating without a moderator (its DCM
    # among such items bounded in the manifest's `suggestion`); None: the bundle has no rule.
    auto_publish = models.BooleanField(null=True)
    # What pushed the rating up, per expert (rating_models.explain); None: not computed.
    explanation = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "model_version"], name="one_prediction_per_version"
            )
        ]
        indexes = [
            # The disagreement list joins each current label to its item's predictions and
            # compares their ratings: with the ratings in the index, counting the list reads
            # no prediction row (half a KiB each, with the experts' JSON), 2x faster at a
            # million items (bench/pages.py).
            models.Index(
                fields=["item", "model_version", "voter_rating", "mlp_rating"],
                name="prediction_item_ratings",
            )
        ]

    def __str__(self) -> str:
        return f"{self.item_id} by {self.model_version_id}: level {self.suggested_rating}"

    def feature_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.features), dtype=np.float16)


class RatingDispatchQuerySet(models.QuerySet):
    def stamp(self, *, item_ids: Iterable[int], new: bool = False) -> None:
        """Record that the items' rating was queued now (one more attempt each). `new`: items
        stored in this transaction, which have no row yet (ingestion: one INSERT)."""
        ids, at = set(item_ids), timezone.now()
        if new:
            self.bulk_create(
                [RatingDispatch(item_id=pk, dispatched_at=at, attempts=1) for pk in ids]
            )
            return
        updated = self.filter(item_id__in=ids).update(dispatched_at=at, attempts=F("attempts") + 1)
        if updated < len(ids):  # the others have no row yet; a row made meanwhile is kept
            self.bulk_create(
                [RatingDispatch(item_id=pk, dispatched_at=at, attempts=1) for pk in ids],
                ignore_conflicts=True,
            )

    def unstamp(self, *, item_ids: Iterable[int]) -> None:
        """The broker refused the message: the items count as never queued, for the sweep."""
        self.filter(item_id__in=set(item_ids)).update(dispatched_at=None)


class RatingDispatch(models.Model):
    """Where one item's rating stands while the champion has not stored it: when it was last
    queued (ingestion, the sweep, an admin's retry), and whether reading it failed.

    The sweep queues an item again only once its last dispatch is older than
    RATING_LEASE_SECONDS, so the messages already waiting are not doubled after a restart.
    A failed item (its image missing, corrupt, a decompression bomb) would fail again: no
    sweep queues it, no batch reads it, until an admin retries it from the health page. The
    row is deleted when the item's prediction is stored, so the table holds only the items
    still waiting or failed and the sweep's anti-join stays small.
    """

    item = models.OneToOneField(
        "media.MediaItem",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="rating_dispatch",
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)  # None: not queued
    failed_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=300, blank=True)  # why, in a few words
    attempts = models.PositiveIntegerField(default=0)  # times queued since the last success

    objects = RatingDispatchQuerySet.as_manager()

    class Meta:
        indexes = [
            # The health page lists the failed items, newest first.
            models.Index(
                fields=["-failed_at"],
                condition=Q(failed_at__isnull=False),
                name="rating_dispatch_failed",
            )
        ]

    def __str__(self) -> str:
        if self.failed_at is not None:
            return f"{self.item_id}: failed ({self.failure})"
        return f"{self.item_id}: queued at {self.dispatched_at}"
