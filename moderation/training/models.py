"""Retraining runs and the evaluations that judge model versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingRun(models.Model):
    """One retrain: what it trained on, where it is, and what came of it."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    class Mode(models.TextChoices):
        MLP = "mlp", "MLP only, on stored expert features"
        FULL = "full", "experts and MLP"
        RECALIBRATE = "cal", "the bounded suggestion recalibrated at a new α"

    ACTIVE = (State.QUEUED, State.RUNNING)

    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.MLP)
    state = models.CharField(max_length=9, choices=State.choices, default=State.QUEUED)
    # A recalibration's target DCM rate (the champion's bundle at another α, nothing trained).
    alpha = models.FloatField(null=True, blank=True)
    stage = models.CharField(max_length=40, blank=True)  # a key of stages.NAMES, or "done"
    progress = models.FloatField(default=0.0)  # 0..1
    log = models.TextField(blank=True)
    reason = models.TextField(blank=True)  # why it failed, or the gate's verdict
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=20, default="admin")  # admin or schedule
    base_version = models.ForeignKey(
        "inference.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    candidate = models.OneToOneField(
        "inference.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_run",
    )
    training_fingerprint = models.CharField(max_length=64, blank=True)
    test_fingerprint = models.CharField(max_length=64, blank=True)
    n_train = models.PositiveIntegerField(default=0)
    n_test = models.PositiveIntegerField(default=0)
    # The gate's figures: {"candidate": report, "champion": report, "checks": [...]}.
    gate = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at every stage: a run whose heartbeat stops was killed with its worker.
    heartbeat_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # True while queued or running, NULL after: the unique index lets one run hold it, so two
    # retrains never run at once, whichever process or trigger starts them.
    active = models.BooleanField(null=True, unique=True, editable=False, default=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.mode}, {self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE


class Evaluation(models.Model):
    """A model version's figures on a data set at a moment.

    `report` is `rating_models.evaluation.evaluate_bundle`'s report (every expert, the voter,
    the MLP and the suggestion, with bootstrap intervals). `data` is "test" (the test split's
    labels) or "live" (moderators' labels on items the version predicted).
    """

    class Data(models.TextChoices):
        TEST = "test", "test split"
        LIVE = "live", "live labels"

    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.CASCADE, related_name="evaluations"
    )
    data = models.CharField(max_length=4, choices=Data.choices)
    fingerprint = models.CharField(max_length=64, blank=True)
    n = models.PositiveIntegerField()
    report = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model_version_id} on {self.data} ({self.n} items)"


class TrainedItem(models.Model):
    """An item a retrain's candidate learned from (fitted, or held out for early stopping).
    Its labels say nothing of how the version does on items it has not seen: the live figures
    leave it out."""

    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.CASCADE, related_name="trained_items"
    )
    item = models.ForeignKey("media.MediaItem", on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "item"], name="trained_item_once")
        ]

    def __str__(self) -> str:
        return f"{self.item_id} trained {self.model_version_id}"


class Promotion(models.Model):
    """A change of champion (a promotion or a rollback), done in the background so that
    moderators never notice it: the version's bundle is loaded, the open review queue is
    rated by it, then the switch and the queue's new priorities land in one transaction.

    The status changes themselves are the audit trail's (`model_status` rows); this row is
    the change's progress, and why it failed if it did (the champion then stays as it was).
    """

    class Kind(models.TextChoices):
        PROMOTE = "promote", "promotion"
        ROLLBACK = "rollback", "rollback"

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        LOADING = "loading", "loading the bundle"
        RATING = "rating", "rating the review queue"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    ACTIVE = (State.QUEUED, State.LOADING, State.RATING)

    version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.PROTECT, related_name="promotions"
    )
    # The champion it replaced, set at the switch.
    previous = models.ForeignKey(
        "inference.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PROMOTE)
    state = models.CharField(max_length=7, choices=State.choices, default=State.QUEUED)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # None: the system (a retrain whose candidate passed the gate)
    reason = models.TextField(blank=True)
    rated = models.PositiveIntegerField(default=0)  # open items rated by the version so far
    to_rate = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now_add=True)  # a stopped one died with its worker
    finished_at = models.DateTimeField(null=True, blank=True)
    # True while queued or under way, NULL after: one change of champion at a time.
    active = models.BooleanField(null=True, unique=True, editable=False, default=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} of {self.version_id} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def progress(self) -> float:
        """0..1: loading is the first tenth, rating the queue the rest."""
        if self.state == self.State.DONE:
            return 1.0
        if self.state in (self.State.QUEUED, self.State.LOADING):
            return 0.0 if self.state == self.State.QUEUED else 0.05
        return 0.1 + 0.9 * (self.rated / self.to_rate if self.to_rate else 1.0)
