"""Model audit sessions: items sampled for an admin to rate, to count the champion's hits and
misses against. The decisions are the review app's (`ReviewTask` of kind audit, closed by an
admin's final decision); a session only remembers what was sampled, why, and which prediction
the decision is compared with."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditSession(models.Model):
    class Mode(models.TextChoices):
        # The champion rated R or above: are these false positives?
        TRIGGERED = "triggered", "triggered"
        # The champion rated below R, but the MLP nearly rated R or above: false negatives?
        NEAR_MISS = "near_miss", "near-miss"

    admin = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    size = models.PositiveIntegerField()  # asked for; `samples` holds what was found
    days = models.PositiveIntegerField()
    # The near-miss margin in force when it was sampled (None for triggered sessions).
    margin = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} audit #{self.pk}"


class AuditSample(models.Model):
    """One sampled item: its audit task and the champion's prediction it was sampled on, the
    one its decision is scored against (a later champion's prediction does not move it)."""

    session = models.ForeignKey(AuditSession, on_delete=models.PROTECT, related_name="samples")
    task = models.OneToOneField(
        "review.ReviewTask", on_delete=models.PROTECT, related_name="audit_sample"
    )
    prediction = models.ForeignKey(
        "inference.Prediction", on_delete=models.PROTECT, related_name="+"
    )
    # Near-miss: how far the MLP's best rating of R or above was below its top probability.
    gap = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.session_id}: task {self.task_id}"
