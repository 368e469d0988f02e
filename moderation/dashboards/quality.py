"""Label quality on the moderation health page: agreement on blind double reviews, gold
results, holds, and the second-decision queues with their outcomes week by week.

Every number comes with the `task_list` filters that list exactly the tasks behind it, so the
page links it to its items (`dashboards:quality_items`). Agreement and gold results cover all
time (a moderator's standing, as a hold reads it); outcomes the last `WEEKS` ISO weeks. A fixed
number of queries whatever the number of tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncWeek
from django.urls import reverse
from django.utils import timezone

from moderation.review.gold import HIT, OVER, UNDER, GoldResult, gold_results
from moderation.review.models import LEVELS, ModeratorHold, ReviewTask
from rating_models.agreement import Agreement, agreement, per_pair

Kind = ReviewTask.Kind
TaskState = ReviewTask.State
WEEKS = 8
# The queues of second decisions, in the order `/review/` serves them (an admin's first).
QUEUE_KINDS = (Kind.CONFIRMATION, Kind.SECOND_LOOK, Kind.ADJUDICATION, Kind.DOUBLE)
SCORED = (HIT, UNDER, OVER)
OPEN, DONE = "open", "done"  # the items page's states: open is open or claimed
# What the items page shows of a task: who decided what.
_SHOWN = ("item", "pending__moderator", "answer__moderator", "closed_by__moderator")
_SHOWN += ("label__moderator", "assigned_to")


def items_url(**filters: object) -> str:
    """The items page under these filters (lists repeat their key, empty ones are left out)."""
    kept = {key: value for key, value in filters.items() if value not in (None, "", (), [])}
    query = urlencode(kept, doseq=True)
    return reverse("dashboards:quality_items") + (f"?{query}" if query else "")


def involving(user_id: int) -> Q:
    """Tasks on this moderator's work: their first or differing decision, the label a second
    look questions, a gold item served to them. Not the tasks they decided for others: a
    moderator's number is about their own decisions."""
    return (
        Q(pending__moderator_id=user_id)
        | Q(answer__moderator_id=user_id)
        | Q(label__moderator_id=user_id)
        | Q(assigned_to_id=user_id)
    )


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    """The ISO week from `monday`, as `TruncWeek` counts it: in the current time zone, with
    its own midnights (a week across a DST change is not 168 hours)."""
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(monday, time.min), zone)
    return start, timezone.make_aware(datetime.combine(monday + timedelta(days=7), time.min), zone)


def task_list(
    *,
    kinds: Iterable[str] = (),
    outcomes: Iterable[str] = (),
    state: str | None = None,
    moderator: AbstractBaseUser | None = None,
    week: date | None = None,
    pair: tuple[AbstractBaseUser, AbstractBaseUser] | None = None,
) -> QuerySet[ReviewTask]:
    """Review tasks under the items page's filters, newest first. `week` is the Monday of the
    week a task closed; `pair` the two moderators of a closed double review, either first."""
    tasks = ReviewTask.objects.all()
    if kinds := list(kinds):
        tasks = tasks.filter(kind__in=kinds)
    if outcomes := list(outcomes):
        tasks = tasks.filter(outcome__in=outcomes)
    if state == OPEN:
        tasks = tasks.exclude(state=TaskState.DONE)
    elif state == DONE:
        tasks = tasks.filter(state=TaskState.DONE)
    if moderator is not None:
        tasks = tasks.filter(involving(moderator.pk))
    if week is not None:
        start, end = week_bounds(week)
        tasks = tasks.filter(closed_at__gte=start, closed_at__lt=end)
    if pair is not None:
        a, b = pair
        tasks = tasks.filter(kind=Kind.DOUBLE, state=TaskState.DONE).filter(
            Q(pending__moderator=a, closed_by__moderator=b)
            | Q(pending__moderator=b, closed_by__moderator=a)
        )
    return tasks.select_related(*_SHOWN).order_by("-created_at", "-pk")


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of one pair of moderators (`names` sorted), or of every pair (`names` None)."""

    names: tuple[str, str] | None
    agreement: Agreement
    url: str

    @property
    def pair(self) -> str:
        return "all pairs" if self.names is None else ",".join(self.names)


def double_review_pairs() -> list[tuple[str, str, int, int]]:
    """(first moderator, second moderator, first level, second level) of every closed blind
    double review: its pending first answer and the decision that closed it."""
    rows = task_list(kinds=[Kind.DOUBLE], state=DONE).order_by("pk")
    names = ("pending__moderator__username", "closed_by__moderator__username")
    return list(rows.values_list(*names, "pending__level", "closed_by__level"))


def agreement_report() -> list[PairAgreement]:
    """Agreement over every closed double review, then per pair of moderators (by names).
    Levels become class indices (Blocked the most restrictive); the first answer is `first`."""
    rows = double_review_pairs()
    overall = agreement(
        [LEVELS.index(a) for _, _, a, _ in rows], [LEVELS.index(b) for _, _, _, b in rows]
    )
    pairs = per_pair(
        (tuple(sorted((first, second))), LEVELS.index(a), LEVELS.index(b))
        for first, second, a, b in rows
    )
    return [
        PairAgreement(None, overall, items_url(kind=Kind.DOUBLE, state=DONE)),
        *(
            PairAgreement(names, figures, items_url(pair=",".join(names)))
            for names, figures in sorted(pairs.items())
        ),
    ]


@dataclass(frozen=True)
class GoldRow:
    """One moderator's gold results, whether they are held, and the links behind each count."""

    result: GoldResult
    held: bool

    @property
    def over_threshold(self) -> bool:
        """Enough answers, and a weighted miss rate past GOLD_HOLD_RATE: what holds."""
        rate = self.result.weighted_miss_rate
        enough = self.result.answers >= settings.GOLD_MIN_ANSWERS
        return enough and rate is not None and rate > settings.GOLD_HOLD_RATE

    @property
    def urls(self) -> dict[str, str]:
        base = {"kind": Kind.GOLD, "state": DONE, "moderator": self.result.username}
        by_outcome = {outcome: items_url(**base, outcome=outcome) for outcome in SCORED}
        return {"answers": items_url(**base, outcome=SCORED), **by_outcome}


@dataclass(frozen=True)
class HoldRow:
    """A standing hold and the count of open tasks on the held moderator's work."""

    hold: ModeratorHold
    waiting: int

    @property
    def username(self) -> str:
        return self.hold.moderator.get_username()

    @property
    def waiting_url(self) -> str:
        return items_url(kind=QUEUE_KINDS, state=OPEN, moderator=self.username)


def hold_rows() -> list[HoldRow]:
    holds = list(
        ModeratorHold.objects.filter(cleared_at__isnull=True)
        .select_related("moderator")
        .order_by("created_at", "pk")
    )
    if not holds:
        return []
    # One query for every hold: a conditional count per held moderator.
    waiting = (
        ReviewTask.objects.exclude(state=TaskState.DONE)
        .filter(kind__in=QUEUE_KINDS)
        .aggregate(**{f"h{h.pk}": Count("pk", filter=involving(h.moderator_id)) for h in holds})
    )
    return [HoldRow(hold=h, waiting=waiting[f"h{h.pk}"]) for h in holds]


@dataclass(frozen=True)
class QueueRow:
    kind: Kind
    size: int
    oldest: datetime | None

    @property
    def name(self) -> str:
        return self.kind.label

    @property
    def url(self) -> str:
        return items_url(kind=self.kind, state=OPEN)


def queue_rows() -> list[QueueRow]:
    """Open and claimed tasks by kind now, with the oldest one's creation."""
    counted = {
        kind: (size, oldest)
        for kind, size, oldest in ReviewTask.objects.exclude(state=TaskState.DONE)
        .filter(kind__in=QUEUE_KINDS)
        .values_list("kind")
        .annotate(size=Count("*"), oldest=Min("created_at"))
        .order_by()
    }
    return [QueueRow(kind, *counted.get(kind, (0, None))) for kind in QUEUE_KINDS]


@dataclass(frozen=True)
class OutcomeRow:
    """Closed tasks of one kind and outcome, per week: (count, link) for each of the weeks."""

    kind: Kind
    outcome: str
    cells: list[tuple[int, str]]


def week_starts(weeks: int = WEEKS, today: date | None = None) -> list[date]:
    """The Mondays of the last `weeks` ISO weeks, this one last."""
    today = today or timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]


def outcome_rows(weeks: list[date]) -> list[OutcomeRow]:
    start, _ = week_bounds(weeks[0])
    counted = (
        ReviewTask.objects.filter(state=TaskState.DONE, closed_at__gte=start)
        .annotate(week=TruncWeek("closed_at"))
        .values_list("kind", "outcome", "week")
        .annotate(n=Count("*"))
        .order_by()
    )
    counts: dict[tuple[str, str], dict[date, int]] = {}
    for kind, outcome, week, n in counted:
        counts.setdefault((kind, outcome), {})[timezone.localtime(week).date()] = n
    order = {kind: i for i, kind in enumerate(Kind.values)}
    rows = []
    for kind, outcome in sorted(counts, key=lambda key: (order[key[0]], key[1])):
        cells = [
            (
                counts[kind, outcome].get(week, 0),
                items_url(kind=kind, outcome=outcome, state=DONE, week=week.isoformat()),
            )
            for week in weeks
        ]
        rows.append(OutcomeRow(Kind(kind), outcome, cells))
    return rows


@dataclass(frozen=True)
class Quality:
    agreement: list[PairAgreement]  # every pair together first
    gold: list[GoldRow]
    holds: list[HoldRow]
    queues: list[QueueRow]
    weeks: list[date]
    outcomes: list[OutcomeRow]

    @property
    def hold_rate(self) -> float:
        return settings.GOLD_HOLD_RATE

    @property
    def min_answers(self) -> int:
        return settings.GOLD_MIN_ANSWERS


def label_quality() -> Quality:
    holds = hold_rows()
    held = {h.hold.moderator_id for h in holds}
    weeks = week_starts()
    return Quality(
        agreement=agreement_report(),
        gold=[GoldRow(result, result.moderator_id in held) for result in gold_results()],
        holds=holds,
        queues=queue_rows(),
        weeks=weeks,
        outcomes=outcome_rows(weeks),
    )
