"""Reads for the dashboards: evaluations by version, severe DCM items, health (the live
figures: moderation.dashboards.live).

Every selector runs a fixed number of queries whatever the number of items, and none reads
every prediction (a million predictions and 100,000 labels, bench/pages.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    Count,
    IntegerField,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from moderation.dashboards.live import COMBINED, labelled
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.models import Label, ReviewState
from moderation.training.models import Evaluation
from rating_models.ratings import EXPLICIT, MILD

# The combined outputs, in the order the dashboards show them; experts follow.
_EXPLICIT_LEVELS = sorted(r.level for r in EXPLICIT)
_MILD_LEVELS = sorted(r.level for r in MILD)
_OPEN_STATES = (ReviewState.State.QUEUED, ReviewState.State.CLAIMED)


def model_version_list() -> list[ModelVersion]:
    """Every version: the champion first, then candidates, former champions, retired ones;
    newest first within."""
    rank = Case(
        When(status=ModelVersion.Status.CHAMPION, then=Value(0)),
        When(status=ModelVersion.Status.CANDIDATE, then=Value(1)),
        When(status=ModelVersion.Status.FORMER, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    return list(ModelVersion.objects.annotate(rank=rank).order_by("rank", "-created_at", "-pk"))


def evaluation_latest_by_version(data: str = "test") -> dict[int, Evaluation]:
    """The latest Evaluation of each model version on `data` ("test" or "live"), by version id.

    A champion is re-evaluated by every retrain on the new test data, so a version has several
    evaluations; the newest is the one that compares with the newest candidate.
    """
    latest = (
        Evaluation.objects.filter(model_version=OuterRef("model_version"), data=data)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    rows = Evaluation.objects.filter(data=data, pk=Subquery(latest)).select_related("model_version")
    return {evaluation.model_version_id: evaluation for evaluation in rows}


def evaluation_list(data: str = "test") -> list[Evaluation]:
    """Every evaluation on `data`, oldest first: the points of the trend charts."""
    return list(
        Evaluation.objects.filter(data=data)
        .select_related("model_version")
        .order_by("created_at", "pk")
    )


def report_models(report: dict[str, Any] | None) -> list[str]:
    """The models a report scores, in display order: suggested, voter, MLP, then experts."""
    if not report:
        return []
    experts = [name for name in report.get("models", {}) if name not in COMBINED]
    return [*COMBINED, *experts]


def report_figures(report: dict[str, Any] | None, model: str) -> dict[str, Any] | None:
    """One model's figures in a report; "suggested" is the report's top level."""
    if not report:
        return None
    if model == "suggested":
        return report
    return report.get("models", {}).get(model)


@dataclass(frozen=True)
class SevereItem:
    """An explicit item (current label X or XXX) that a model rated PG or PG13."""

    prediction: Prediction
    label_level: int
    label_moderator: str | None
    label_at: datetime
    history_url: str

    @property
    def item(self) -> Any:
        return self.prediction.item

    @property
    def slipped(self) -> list[str]:
        """Which of the suggestion, the voter and the MLP rated the item PG or PG13."""
        p = self.prediction
        ratings = (
            ("suggested", p.suggested_rating),
            ("voter", p.voter_rating),
            ("mlp", p.mlp_rating),
        )
        return [name for name, level in ratings if level in _MILD_LEVELS]


def severe_down_class_items(
    version: ModelVersion | None = None, *, limit: int | None = None
) -> list[SevereItem]:
    """Items whose current label is X or XXX and that the champion (or `version`) rated PG or
    PG13 by its suggestion, its voter or its MLP: the severe down-class misclassifications.

    Newest label first; empty when there is no champion.
    """
    if version is None:
        version = ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION).first()
        if version is None:
            return []
    mild = (
        Q(suggested_rating__in=_MILD_LEVELS)
        | Q(voter_rating__in=_MILD_LEVELS)
        | Q(mlp_rating__in=_MILD_LEVELS)
    )
    rows = (
        labelled(Prediction.objects.filter(model_version=version), _EXPLICIT_LEVELS)
        .filter(mild)
        .select_related("item", "model_version")
        .order_by("-label_at", "-pk")
    )
    if limit is not None:
        rows = rows[:limit]
    return [
        SevereItem(
            prediction=row,
            label_level=row.label_level,
            label_moderator=row.label_moderator,
            label_at=row.label_at,
            history_url=reverse("review:history", args=[row.item.uid]),
        )
        for row in rows
    ]


class CorrectionRates:
    """How often moderators corrected the voter and the MLP, where their agreement is known."""

    voter_known: int
    voter_corrected: int
    mlp_known: int
    mlp_corrected: int

    @property
    def voter_correction_rate(self) -> float | None:
        return self.voter_corrected / self.voter_known if self.voter_known else None

    @property
    def mlp_correction_rate(self) -> float | None:
        return self.mlp_corrected / self.mlp_known if self.mlp_known else None


@dataclass(frozen=True)
class ModeratorHealth(CorrectionRates):
    username: str
    labels: int
    blocked: int
    voter_known: int
    voter_corrected: int
    mlp_known: int
    mlp_corrected: int


@dataclass(frozen=True)
class Health(CorrectionRates):
    """How the moderation is going over the last `days` days (see `moderation_health`)."""

    days: int
    since: datetime
    labels_per_day: list[tuple[date, int]]
    moderators: list[ModeratorHealth]
    labels: int
    voter_known: int
    voter_corrected: int
    mlp_known: int
    mlp_corrected: int
    queue_size: int
    queued: int
    claimed: int
    oldest_queued_at: datetime | None
    now: datetime = field(default_factory=timezone.now)

    @property
    def oldest_age(self) -> timedelta | None:
        return None if self.oldest_queued_at is None else self.now - self.oldest_queued_at


# Up to this many open items, the oldest is found from the queue (one look-up per open item);
# beyond, by walking the items oldest first until one is open, which stops early when many
# are open (900,000 of a million in bench/pages.py) but reads every older decided item.
OLDEST_FROM_QUEUE_UP_TO = 10_000

_LABEL_FIGURES = (
    "labels",
    "blocked",
    "voter_known",
    "voter_corrected",
    "mlp_known",
    "mlp_corrected",
)


def _queue_oldest_received_at(open_items: int) -> datetime | None:
    """When the oldest queued or claimed item arrived; None when none is."""
    if not open_items:
        return None  # the walk below would read every item to find none
    items = MediaItem.objects.filter(review__state__in=_OPEN_STATES)
    if open_items <= OLDEST_FROM_QUEUE_UP_TO:
        return items.aggregate(oldest=Min("received_at"))["oldest"]
    return items.order_by("received_at").values_list("received_at", flat=True).first()


def moderation_health(days: int = 30) -> Health:
    """Moderators' labels per day and per moderator over the last `days` days, how often they
    corrected the champion's voter and MLP, and the queue's size and age.

    Only labels written by a moderator count (imports from the corpus would swamp a day).
    A correction rate is the share of labels whose `agreed_with_voter` (or `_mlp`) is False,
    over the labels where it is known: a label on an item without a prediction has None.
    The queue is the items queued or claimed; its age is the oldest such item's arrival.

    Three queries whatever the sizes: the labels counted once by (day, moderator), which the
    days, the moderators and the totals add up; the queue counted by state from an index of
    the review states alone; and its oldest item, which stops at the first open one instead of
    joining the whole queue to its items (0.9 s at a million items, bench/pages.py).
    """
    now = timezone.now()
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    counted = (
        Label.objects.filter(moderator__isnull=False, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "moderator__username")
        .annotate(
            labels=Count("id"),
            blocked=Count("id", filter=Q(level=Label.BLOCKED)),
            voter_known=Count("id", filter=Q(agreed_with_voter__isnull=False)),
            voter_corrected=Count("id", filter=Q(agreed_with_voter=False)),
            mlp_known=Count("id", filter=Q(agreed_with_mlp__isnull=False)),
            mlp_corrected=Count("id", filter=Q(agreed_with_mlp=False)),
        )
        .order_by()
    )
    per_day: dict[date, int] = defaultdict(int)
    per_moderator: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_LABEL_FIGURES, 0))
    for row in counted:
        per_day[row["day"]] += row["labels"]
        figures = per_moderator[row["moderator__username"]]
        for key in _LABEL_FIGURES:
            figures[key] += row[key]
    moderators = sorted(
        (ModeratorHealth(username=name, **figures) for name, figures in per_moderator.items()),
        key=lambda m: (-m.labels, m.username),
    )
    totals = {
        key: sum(getattr(m, key) for m in moderators) for key in _LABEL_FIGURES if key != "blocked"
    }
    # COUNT(*), not of a column: PostgreSQL answers from review_claim_expiry (state first)
    # without reading the states' rows.
    queue = dict.fromkeys(_OPEN_STATES, 0)
    queue.update(
        ReviewState.objects.filter(state__in=_OPEN_STATES)
        .values_list("state")
        .annotate(n=Count("*"))
        .order_by()
    )
    queue_size = sum(queue.values())
    return Health(
        days=days,
        since=since,
        labels_per_day=[
            (day, per_day.get(day, 0))
            for day in (since.date() + timedelta(days=i) for i in range(days))
        ],
        moderators=moderators,
        **totals,
        queue_size=queue_size,
        queued=queue[ReviewState.State.QUEUED],
        claimed=queue[ReviewState.State.CLAIMED],
        oldest_queued_at=_queue_oldest_received_at(queue_size),
        now=now,
    )
