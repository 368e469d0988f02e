"""Gold items and the holds they lead to.

An admin marks an item with a settled rating as gold. Gold items are served to moderators at
`GOLD_SHARE` of their claims (`review.task_claims`) and look like any other item; an answer is a
decision scored against the settled rating, never a label. A miss below the settled rating
weighs `GOLD_UNDER_WEIGHT`, one above `GOLD_OVER_WEIGHT`; a moderator with `GOLD_MIN_ANSWERS`
answers or more whose weighted miss rate passes `GOLD_HOLD_RATE` is held: their new decisions
wait for a second look until an admin clears the hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from scipy.stats import binomtest

from moderation.audit.services import Action, audit_record
from moderation.media.models import MediaItem
from moderation.review.labels import current_labels
from moderation.review.models import (
    LEVELS,
    Decision,
    GoldItem,
    Label,
    ModeratorHold,
    ReviewTask,
)
from moderation.review.queue import level_label
from moderation.review.task_claims import second_look_open

HIT, UNDER, OVER = "hit", "under", "over"


class GoldError(ValueError):
    """A gold or hold action that cannot be done; the message says why."""


def gold_outcome(*, settled: int, answer: int) -> str:
    """`hit`, `under` (below the settled rating: the miss that matters) or `over`. Blocked is
    above every rating."""
    if answer == settled:
        return HIT
    return UNDER if LEVELS.index(answer) < LEVELS.index(settled) else OVER


@transaction.atomic
def gold_mark(*, items: Iterable[MediaItem], admin: AbstractBaseUser) -> int:
    """Mark items as gold at their current label (the settled rating); items without a label,
    purged ones and ones already gold are left out. Returns how many were marked."""
    labels = current_labels().filter(item__in=list(items), item__purged_at__isnull=True)
    marked = 0
    for label in labels.exclude(item__gold__isnull=False).select_related("item"):
        GoldItem.objects.create(item=label.item, level=label.level, created_by=admin)
        audit_record(
            action=Action.GOLD,
            actor=admin,
            item=label.item,
            old="",
            new=f"gold at {level_label(label.level)}",
        )
        marked += 1
    return marked


def hold_get_standing(*, moderator: AbstractBaseUser) -> ModeratorHold | None:
    return ModeratorHold.objects.filter(moderator=moderator, cleared_at__isnull=True).first()


@dataclass(frozen=True)
class GoldResult:
    """One moderator's gold answers: counts, rates with 95% Wilson intervals, the weighted miss
    rate that decides a hold."""

    moderator_id: int
    username: str
    answers: int
    hits: int
    under: int
    over: int

    def _rate(self, count: int) -> tuple[float | None, float | None, float | None]:
        if not self.answers:
            return None, None, None
        ci = binomtest(count, self.answers).proportion_ci(method="wilson")
        return count / self.answers, float(ci.low), float(ci.high)

    @property
    def accuracy(self):
        return self._rate(self.hits)

    @property
    def under_rate(self):
        return self._rate(self.under)

    @property
    def over_rate(self):
        return self._rate(self.over)

    @property
    def weighted_miss_rate(self) -> float | None:
        """(under weight x under + over weight x over) / (under weight x answers): 1 when every
        answer is below the settled rating."""
        if not self.answers:
            return None
        weighted = settings.GOLD_UNDER_WEIGHT * self.under + settings.GOLD_OVER_WEIGHT * self.over
        return weighted / (settings.GOLD_UNDER_WEIGHT * self.answers)


def gold_answers(since: datetime | None = None) -> QuerySet[ReviewTask]:
    """Closed gold tasks with an answer (skipped ones are not scored)."""
    tasks = ReviewTask.objects.filter(
        kind=ReviewTask.Kind.GOLD, state=ReviewTask.State.DONE, outcome__in=(HIT, UNDER, OVER)
    )
    return tasks if since is None else tasks.filter(closed_at__gte=since)


def gold_results(
    *, moderator: AbstractBaseUser | None = None, since: datetime | None = None
) -> list[GoldResult]:
    """Per moderator (or for one), their gold answers since `since` (all by default)."""
    tasks = gold_answers(since)
    if moderator is not None:
        tasks = tasks.filter(assigned_to=moderator)
    counts: dict[tuple[int, str], dict[str, int]] = {}
    for moderator_id, username, outcome in tasks.values_list(
        "assigned_to", "assigned_to__username", "outcome"
    ):
        row = counts.setdefault((moderator_id, username), {HIT: 0, UNDER: 0, OVER: 0})
        row[outcome] += 1
    return [
        GoldResult(pk, name, sum(c.values()), c[HIT], c[UNDER], c[OVER])
        for (pk, name), c in sorted(counts.items(), key=lambda kv: kv[0][1])
    ]


def gold_weeks(*, moderator: AbstractBaseUser, weeks: int = 8) -> list[tuple[datetime, GoldResult]]:
    """One moderator's gold results week by week (newest first), for their history page."""
    today = timezone.now()
    out = []
    for back in range(weeks):
        end = today - timedelta(weeks=back)
        start = end - timedelta(weeks=1)
        tasks = gold_answers(start).filter(assigned_to=moderator, closed_at__lt=end)
        outcomes = list(tasks.values_list("outcome", flat=True))
        if outcomes:
            out.append(
                (
                    start,
                    GoldResult(
                        moderator.pk,
                        moderator.get_username(),
                        len(outcomes),
                        outcomes.count(HIT),
                        outcomes.count(UNDER),
                        outcomes.count(OVER),
                    ),
                )
            )
    return out


def hold_check(*, moderator: AbstractBaseUser) -> ModeratorHold | None:
    """Hold the moderator when their gold answers since their last hold was cleared pass the
    threshold; returns the new hold, or None."""
    if hold_get_standing(moderator=moderator) is not None:
        return None
    last = ModeratorHold.objects.filter(moderator=moderator).order_by("-cleared_at").first()
    results = gold_results(moderator=moderator, since=None if last is None else last.cleared_at)
    if not results or results[0].answers < settings.GOLD_MIN_ANSWERS:
        return None
    result = results[0]
    rate = result.weighted_miss_rate
    if rate is None or rate <= settings.GOLD_HOLD_RATE:
        return None
    reason = (
        f"weighted gold miss rate {rate:.0%} over {result.answers} answers "
        f"({result.under} below, {result.over} above the settled rating)"
    )
    try:
        with transaction.atomic():
            hold = ModeratorHold.objects.create(moderator=moderator, reason=reason)
    except IntegrityError:  # another answer held them in the meantime
        return None
    audit_record(action=Action.HOLD, old="", new=f"{moderator.get_username()} held", reason=reason)
    return hold


@transaction.atomic
def hold_clear(*, hold: ModeratorHold, admin: AbstractBaseUser, reason: str = "") -> None:
    """An admin lifts a hold: the moderator's decisions are final again from now on."""
    if hold.cleared_at is not None:
        raise GoldError("this hold was cleared already")
    hold.cleared_at, hold.cleared_by = timezone.now(), admin
    hold.save(update_fields=["cleared_at", "cleared_by"])
    audit_record(
        action=Action.HOLD,
        actor=admin,
        old=f"{hold.moderator.get_username()} held",
        new="cleared",
        reason=reason,
    )


def held_decisions_before(*, hold: ModeratorHold, days: int) -> QuerySet[Decision]:
    """The held moderator's final decisions in the `days` before the hold whose label is still
    current: those an admin may send to a second look."""
    start = hold.created_at - timedelta(days=days)
    return Decision.objects.filter(
        moderator=hold.moderator,
        status=Decision.Status.FINAL,
        created_at__gte=start,
        created_at__lt=hold.created_at,
        labels__superseded_by__isnull=True,
    )


@transaction.atomic
def hold_send_to_second_look(
    *, hold: ModeratorHold, days: int, actor: AbstractBaseUser
) -> tuple[int, int]:
    """A second look at each label the held moderator's final decisions in the `days` before
    the hold wrote and that is still current. Returns (opened, left): left had a second look
    open already or were relabelled meanwhile."""
    name = hold.moderator.get_username()
    decisions = held_decisions_before(hold=hold, days=days)
    labels = Label.objects.filter(decision__in=decisions, superseded_by__isnull=True)
    opened = left = 0
    for label in labels.select_related("item", "moderator").order_by("created_at", "pk"):
        task = second_look_open(
            label=label, reason=f"decided by held moderator {name}", priority=0.0, actor=actor
        )
        opened, left = (opened + 1, left) if task is not None else (opened, left + 1)
    return opened, left
