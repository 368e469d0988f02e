"""Model versions (one row per rating bundle) and the predictions they made."""

from __future__ import annotations

import numpy as np
from django.db import models
from django.db.models import Q


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
