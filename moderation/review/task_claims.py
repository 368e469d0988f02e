"""Opening `ReviewTask`s and claiming them.

`/review/` serves, in order: confirmations (they block labels), second looks, a gold item at
`GOLD_SHARE` of claims, the second halves of blind double reviews; then the main queue
(`review.claims`); an admin gets the adjudications first. A task is claimed by POST with a
lease, like a queue item, by a conditional update that exactly one of two racers wins (on
PostgreSQL and on SQLite alike). A moderator
never gets a task on their own decision, and a held moderator gets no task that decides
another's label.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from moderation.audit.services import Action, audit_record
from moderation.media.models import MediaItem
from moderation.review.decorators import is_admin
from moderation.review.models import Decision, GoldItem, Label, ModeratorHold, ReviewTask, Skip

Kind = ReviewTask.Kind
TaskState = ReviewTask.State
# Kinds a moderator takes before the main queue, in order; gold is drawn between the two.
BEFORE_GOLD = (Kind.CONFIRMATION, Kind.SECOND_LOOK)
AFTER_GOLD = (Kind.DOUBLE,)
# Kinds whose item a moderator decides without seeing what others decided on it.
BLIND = (Kind.CONFIRMATION, Kind.GOLD, Kind.DOUBLE)
# Gold items a draw considers (a random sample, weighted toward the explicit ratings).
GOLD_SAMPLE = 200
EXPLICIT_LEVELS = (8, 16, 32)


def task_open(
    *,
    item: MediaItem,
    kind: str,
    reason: str,
    pending: Decision | None = None,
    answer: Decision | None = None,
    label: Label | None = None,
    excluded: AbstractBaseUser | None = None,
    priority: float = 0.0,
    actor: AbstractBaseUser | None = None,
) -> ReviewTask:
    task = ReviewTask.objects.create(
        item=item,
        kind=kind,
        reason=reason[:200],
        pending=pending,
        answer=answer,
        label=label,
        excluded=excluded,
        priority=priority,
    )
    audit_record(
        action=Action.TASK,
        actor=actor if actor is not None else (pending.moderator if pending else None),
        item=item,
        old="",
        new=f"{task.get_kind_display()} opened",
        reason=reason,
        task=task.pk,
    )
    return task


def task_get_held(
    *, moderator: AbstractBaseUser, item: MediaItem | None = None, audit: bool = False
) -> ReviewTask | None:
    """The task this moderator holds now (on `item`, if given), or None. Changes nothing.
    A model audit's tasks belong to its own page: only with `audit`, and then only those."""
    tasks = ReviewTask.objects.filter(
        claimed_by=moderator, state=TaskState.CLAIMED, claimed_until__gte=timezone.now()
    )
    tasks = tasks.filter(kind=Kind.AUDIT) if audit else tasks.exclude(kind=Kind.AUDIT)
    if item is not None:
        tasks = tasks.filter(item=item)
    return tasks.select_related("item", "pending", "label").first()


def _lease() -> timezone.datetime:
    return timezone.now() + timedelta(minutes=settings.CLAIM_MINUTES)


def _claimable(moderator: AbstractBaseUser, kinds) -> Q:
    now = timezone.now()
    return Q(kind__in=kinds) & (
        Q(state=TaskState.OPEN) | Q(state=TaskState.CLAIMED, claimed_until__lt=now)
    )


def _take(task_ids, moderator: AbstractBaseUser) -> ReviewTask | None:
    """Claim the first of these tasks still open (one racer wins each row)."""
    now = timezone.now()
    for pk in task_ids:
        with transaction.atomic():
            won = (
                ReviewTask.objects.filter(pk=pk)
                .filter(Q(state=TaskState.OPEN) | Q(state=TaskState.CLAIMED, claimed_until__lt=now))
                .update(state=TaskState.CLAIMED, claimed_by=moderator, claimed_until=_lease())
            )
            if won:
                task = ReviewTask.objects.select_related("item").get(pk=pk)
                _claimed(task, moderator)
                return task
    return None


def _claimed(task: ReviewTask, moderator: AbstractBaseUser) -> None:
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=task.item,
        old=f"{task.get_kind_display()} open",
        new=f"claimed by {moderator.get_username()}",
        task=task.pk,
    )


def _open_for(moderator: AbstractBaseUser, kind: str) -> list[int]:
    """Open tasks of this kind this moderator may take, in serving order: not on an item they
    decided (their own decision is what a task checks) nor one they skipped."""
    now = timezone.now()
    skipped = Skip.objects.filter(moderator=moderator, until__gt=now).values("item_id")
    tasks = (
        ReviewTask.objects.filter(_claimable(moderator, (kind,)))
        .exclude(excluded=moderator)
        .exclude(item_id__in=skipped)
    )
    if kind != Kind.ADJUDICATION:
        decided = Decision.objects.filter(item=OuterRef("item"), moderator=moderator)
        tasks = tasks.exclude(Exists(decided))
    return list(tasks.order_by("-priority", "created_at", "pk").values_list("pk", flat=True)[:50])


def _held(moderator: AbstractBaseUser) -> bool:
    return ModeratorHold.objects.filter(moderator=moderator, cleared_at__isnull=True).exists()


def task_claim_next(*, moderator: AbstractBaseUser) -> ReviewTask | None:
    """Claim the next task for this moderator before the main queue, or None.

    One query finds which kinds have open tasks at all, so a claim when there are none (most
    claims) costs that one query, plus the gold draw's at `GOLD_SHARE` of claims."""
    waiting = set(
        ReviewTask.objects.exclude(state=TaskState.DONE).values_list("kind", flat=True).distinct()
    )
    if Kind.GOLD in waiting and (task := gold_resume(moderator=moderator)):
        return task
    held = bool(waiting - {Kind.GOLD}) and _held(moderator)
    adjudicates = Kind.ADJUDICATION in waiting and is_admin(moderator)
    if adjudicates and (task := _take(_open_for(moderator, Kind.ADJUDICATION), moderator)):
        return task
    for kind in () if held else BEFORE_GOLD:
        if kind in waiting and (task := _take(_open_for(moderator, kind), moderator)):
            return task
    drawn = settings.GOLD_SHARE > 0 and random.random() < settings.GOLD_SHARE
    if drawn and (task := gold_serve(moderator=moderator)):
        return task
    for kind in () if held else AFTER_GOLD:
        if kind in waiting and (task := _take(_open_for(moderator, kind), moderator)):
            return task
    return None


def gold_serve(*, moderator: AbstractBaseUser) -> ReviewTask | None:
    """A gold item this moderator has not answered nor decided, drawn with explicit ratings
    `GOLD_EXPLICIT_WEIGHT` times as likely; served as a claimed task assigned to them."""
    touched = Decision.objects.filter(item=OuterRef("item"), moderator=moderator)
    served = ReviewTask.objects.filter(item=OuterRef("item"), kind=Kind.GOLD, assigned_to=moderator)
    candidates = list(
        GoldItem.objects.filter(active=True, item__purged_at__isnull=True)
        .exclude(Exists(touched))
        .exclude(Exists(served))
        .order_by("?")
        .values_list("item_id", "level")[:GOLD_SAMPLE]
    )
    if not candidates:
        return None
    weights = [
        settings.GOLD_EXPLICIT_WEIGHT if level in EXPLICIT_LEVELS else 1.0
        for _, level in candidates
    ]
    item_id, _ = random.choices(candidates, weights=weights)[0]
    task = ReviewTask.objects.create(
        item_id=item_id,
        kind=Kind.GOLD,
        reason="gold",
        assigned_to=moderator,
        state=TaskState.CLAIMED,
        claimed_by=moderator,
        claimed_until=_lease(),
    )
    _claimed(ReviewTask.objects.select_related("item").get(pk=task.pk), moderator)
    return task


def gold_resume(*, moderator: AbstractBaseUser) -> ReviewTask | None:
    """A gold item served to this moderator and not answered (its lease ran out): served again
    before anything else, so a gold item cannot be dodged by waiting."""
    task = (
        ReviewTask.objects.filter(kind=Kind.GOLD, assigned_to=moderator)
        .exclude(state=TaskState.DONE)
        .first()
    )
    if task is None:
        return None
    ReviewTask.objects.filter(pk=task.pk).update(
        state=TaskState.CLAIMED, claimed_by=moderator, claimed_until=_lease()
    )
    return ReviewTask.objects.select_related("item").get(pk=task.pk)


@transaction.atomic
def task_give_back(*, task: ReviewTask, moderator: AbstractBaseUser, outcome: str) -> None:
    """Give back a held task without a decision (skip, undo). A gold item is closed unscored
    (`skipped`); any other task opens again for others."""
    if task.kind == Kind.GOLD:
        ReviewTask.objects.filter(pk=task.pk).update(
            state=TaskState.DONE,
            outcome="skipped",
            claimed_by=None,
            claimed_until=None,
            closed_at=timezone.now(),
        )
    else:
        ReviewTask.objects.filter(pk=task.pk, claimed_by=moderator).update(
            state=TaskState.OPEN, claimed_by=None, claimed_until=None
        )
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=task.item,
        old=f"claimed by {moderator.get_username()}",
        new=f"{task.get_kind_display()} {outcome}",
        task=task.pk,
    )


def second_look_open(
    *, label: Label, reason: str, priority: float, actor: AbstractBaseUser | None = None
) -> ReviewTask | None:
    """A second look at a current label by someone other than its moderator; None when the
    item has one open already, or the label is no longer current."""
    if Label.objects.filter(supersedes=label).exists():
        return None
    if (
        ReviewTask.objects.filter(item_id=label.item_id, kind=Kind.SECOND_LOOK)
        .exclude(state=TaskState.DONE)
        .exists()
    ):
        return None
    try:  # two passes at once (a second click, beat beside a click): the database picks one
        with transaction.atomic():
            return task_open(
                item=label.item,
                kind=Kind.SECOND_LOOK,
                reason=reason,
                label=label,
                excluded=label.moderator,
                priority=priority,
                actor=actor,
            )
    except IntegrityError:
        return None
