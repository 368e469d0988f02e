"""The audit trail: one row per change of a label, a review state, a claim, a model status,
an override or an item's content. Append-only: a trigger refuses UPDATE and DELETE."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LABEL = "label", "label"
        REVIEW_STATE = "review_state", "review state"
        CLAIM = "claim", "claim"
        CONFLICT = "conflict", "conflict"
        OVERRIDE = "override", "override"
        MODEL_STATUS = "model_status", "model status"
        CONTENT = "content", "content"
        PURGE = "purge", "purge"
        RATING_RETRY = "rating_retry", "rating retry"
        TASK = "task", "task"  # a second decision asked for, or its outcome
        GOLD = "gold", "gold"  # an item marked gold, or retired
        HOLD = "hold", "hold"  # a moderator held for a second look, or cleared

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # None: the system (an import, a worker, a scheduled retrain).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    item = models.ForeignKey(
        "media.MediaItem",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    model_version = models.ForeignKey(
        "inference.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    old = models.CharField(max_length=200, blank=True)
    new = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    # Ids and names that explain the row: the decision, the label, the path it came by.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["item", "-at"], name="audit_item_at"),
            models.Index(fields=["actor", "-at"], name="audit_actor_at"),
            models.Index(fields=["action", "-at"], name="audit_action_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}: {self.old} → {self.new}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("audit rows are append-only")
        super().save(*args, **kwargs)
