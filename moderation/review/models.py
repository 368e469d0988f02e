"""The review queue (one state row per item), the decisions people make and the labels they
become. Decisions and labels are append-only: a trigger refuses UPDATE and DELETE (migration
0005), and rows that point at them use PROTECT."""

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
        # Decided, but the decision waits for a second one (a big downgrade's confirmation, a
        # held moderator's second look, the other half of a blind double review).
        WAITING = "waiting", "waiting"
        DONE = "done", "done"

    item = models.OneToOneField("media.MediaItem", on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=7, choices=State.choices, default=State.QUEUED)
    # A claim from the grid page: one of a page of items held at once, each with its lease;
    # the review page's one held item is never one of them.
    grid = models.BooleanField(default=False, db_default=False)
    # Left out of a grid's "confirm suggested" (a down-class warning, no suggestion): the item
    # waits for single review and no later grid page shows it again.
    single_only = models.BooleanField(default=False, db_default=False)
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


LEVELS = [1, 2, 4, 8, 16, 32]


class Decision(models.Model):
    """One act of a person (or an import) on an item: who, when, by which path, the rating or
    Blocked, the label it saw, and the reason where one is required.

    A final decision writes the item's label at once; a pending one (the second look, the
    blind double review and the big-downgrade confirmation will create them) writes nothing
    else: no label, no figure, no training row changes until a final decision follows.
    """

    class Status(models.TextChoices):
        FINAL = "final", "final"  # wrote the item's label
        PENDING = "pending", "pending"  # waits for a second decision (a `ReviewTask`)
        GOLD = "gold", "gold answer"  # scored against a gold item's settled rating; no label
        CONFIRMS = "confirms", "confirms"  # a second look that kept the current label

    class Path(models.TextChoices):
        REVIEW = "review", "review"  # the review page, on an item the moderator holds
        CORRECTION = "correction", "correction"  # confirmed over a newer label, with a reason
        IMPORT = "import", "import"  # arrived with the item (the corpus, a platform)
        ADMIN = "admin", "admin"  # an admin's tool: management commands, tests, the shell
        GRID = "grid", "grid"  # grid review: one decision per item of a bulk action
        AUDIT = "audit", "model audit"  # an admin's audit of the model's hits and misses
        # The second decisions of `ReviewTask`s, by their kind.
        GOLD = "gold", "gold"
        DOUBLE = "double", "blind double review"
        CONFIRMATION = "confirmation", "confirmation"
        SECOND_LOOK = "second_look", "second look"
        ADJUDICATION = "adjudication", "adjudication"

    item = models.ForeignKey("media.MediaItem", on_delete=models.PROTECT, related_name="decisions")
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
    )
    origin = models.CharField(max_length=50, default="moderator")
    path = models.CharField(max_length=20, choices=Path.choices)
    level = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FINAL)
    # The item's current label when the moderator decided (None: it had none): a final label
    # written since makes this decision a conflict, not an overwrite.
    saw_label = models.ForeignKey(
        "Label", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["item", "-created_at"], name="review_decision_item")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level__in=LEVELS), name="decision_level_valid"
            )
        ]

    def __str__(self) -> str:
        who = self.moderator_id or self.origin
        return f"{self.item_id}: {self.status} level {self.level} by {who}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("decisions are append-only: record a new decision")
        super().save(*args, **kwargs)


class Label(models.Model):
    """The item's rating of record, written by a final decision. Append-only: a correction
    is a new label that supersedes the current one.

    `level` is a rating level (1, 2, 4, 8, 16) or 32 for Blocked. The item's current label is
    the one no other label supersedes (`review.labels.current_labels`, the one selector every
    reader uses); nothing is ever updated in place, so who said what, when, survives.
    """

    BLOCKED = 32

    item = models.ForeignKey("media.MediaItem", on_delete=models.PROTECT, related_name="labels")
    # The final decision that wrote it (None only for labels written before decisions existed).
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="labels"
    )
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
        "inference.Prediction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
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
            models.CheckConstraint(condition=models.Q(level__in=LEVELS), name="label_level_valid"),
            # One first label per item: two decisions racing on an unlabelled item cannot both
            # become current (later labels are kept to one chain by `supersedes`, unique).
            models.UniqueConstraint(
                fields=["item"],
                condition=models.Q(supersedes__isnull=True),
                name="one_first_label_per_item",
            ),
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


class ReviewTask(models.Model):
    """A decision asked of one more person on an item, outside the main queue.

    - `confirmation`: a moderator's decision two or more levels below the champion's suggestion
      waits (`pending`) for a second moderator, who decides the item blind.
    - `second_look`: a likely label error (confident learning), or a held moderator's pending
      decision, decided again by someone other than the one who decided it.
    - `gold`: a gold item served to one moderator (`assigned_to`); the answer is scored.
    - `double`: the other half of a blind double review (`pending` is the first answer).
    - `adjudication`: two decisions that differ (`pending` and `answer`); an admin decides.

    `excluded` may not take the task (whose decision it checks). A task is queue state, like
    `ReviewState`: its claim and its close change the row, and each writes an audit row; the
    decisions it gathers are append-only.
    """

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "confirmation"
        SECOND_LOOK = "second_look", "second look"
        GOLD = "gold", "gold"
        DOUBLE = "double", "blind double review"
        ADJUDICATION = "adjudication", "adjudication"
        AUDIT = "audit", "model audit"  # an item sampled for an admin's audit of the model

    class State(models.TextChoices):
        OPEN = "open", "open"
        CLAIMED = "claimed", "claimed"
        DONE = "done", "done"

    item = models.ForeignKey("media.MediaItem", on_delete=models.PROTECT, related_name="tasks")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    state = models.CharField(max_length=7, choices=State.choices, default=State.OPEN)
    reason = models.CharField(max_length=200, blank=True)
    # Served first within its kind (second looks: the label's down-class risk).
    priority = models.FloatField(default=0.0)
    pending = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    answer = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # For a second look at a label: the label it questions.
    label = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    excluded = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # How it ended: `agreed`, `differed` (sent to adjudication), `relabelled`, `confirmed`,
    # `pending confirmation`, `hit`, `under`, `over` (gold), `adjudicated`.
    outcome = models.CharField(max_length=30, blank=True)
    closed_by = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["kind", "state", "-priority"], name="review_task_queue"),
            models.Index(fields=["item", "kind"], name="review_task_item"),
        ]
        constraints = [
            # One open task of a kind per item (gold: per moderator it is served to).
            models.UniqueConstraint(
                fields=["item", "kind"],
                condition=~models.Q(state="done") & ~models.Q(kind="gold"),
                name="one_open_task_per_item_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.kind} ({self.state})"


class GoldItem(models.Model):
    """An item with a settled rating, seeded into moderators' queues to score them. Answers on
    it are decisions scored against `level`; they never become labels."""

    item = models.OneToOneField("media.MediaItem", on_delete=models.PROTECT, related_name="gold")
    level = models.PositiveSmallIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(level__in=LEVELS), name="gold_level_valid")
        ]

    def __str__(self) -> str:
        return f"gold {self.item_id}: level {self.level}"


class ModeratorHold(models.Model):
    """A moderator whose gold answers missed too often: while the hold stands (`cleared_at`
    empty), their new decisions wait for a second look."""

    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="holds"
    )
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["moderator"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_standing_hold_per_moderator",
            )
        ]

    def __str__(self) -> str:
        return f"hold on {self.moderator_id} since {self.created_at:%Y-%m-%d}"
