"""Claims on the review queue: taking an item, skipping it, giving it back, taking back one's
own decision or a skipped item (undo). Each changes the item's review state and writes an
audit row.

Claims are taken by POST only; `item_get_held` is the read a GET may make.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from moderation.audit.services import Action, audit_record
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.decisions import DecisionError, claim_holder, held_by_other
from moderation.review.labels import label_get_current
from moderation.review.models import ReviewState, ReviewTask, Skip
from moderation.review.queue import down_class_risk
from moderation.review.selectors import review_state_list_open
from moderation.review.task_claims import task_claim_next, task_get_held, task_give_back

State = ReviewState.State
TaskState = ReviewTask.State


def review_priorities_update(*, item_ids: Sequence[int], version: ModelVersion) -> None:
    """Set the queue priority of items from the version's predictions, if it is the champion
    (a version being promoted rates the queue first; its priorities land with the switch)."""
    if not ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.CHAMPION).exists():
        return
    predictions = Prediction.objects.filter(item_id__in=item_ids, model_version=version)
    states = {s.item_id: s for s in ReviewState.objects.filter(item_id__in=item_ids)}
    changed = []
    for p in predictions:
        state = states.get(p.item_id)
        if state is None:
            continue
        state.priority = down_class_risk(
            suggested_level=p.suggested_rating,
            mlp_probs=p.mlp_probs,
            expert_levels=[e["rating"] for e in p.experts.values()],
            flagged=p.flagged,
        )
        changed.append(state)
    ReviewState.objects.bulk_update(changed, ["priority"])


def item_get_held(*, moderator: AbstractBaseUser) -> MediaItem | None:
    """The item this moderator holds now (an unexpired claim on a task or a queue item), or
    None. Changes nothing."""
    task = task_get_held(moderator=moderator)
    if task is not None:
        return task.item
    held = (
        ReviewState.objects.filter(
            claimed_by=moderator, state=State.CLAIMED, claimed_until__gte=timezone.now(), grid=False
        )
        .select_related("item")
        .first()
    )
    return None if held is None else held.item


def _claimed(state: ReviewState, moderator: AbstractBaseUser, holder: str | None) -> None:
    """The audit row of a claim: from the queue, or taken over from an expired claim."""
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=state.item,
        old="queued" if holder is None else f"claimed by {holder} (expired)",
        new=f"claimed by {moderator.get_username()}",
    )


def item_claim_next(*, moderator: AbstractBaseUser, holds_none: bool = False) -> MediaItem | None:
    """Claim the riskiest open item for this moderator, or give back the one they hold.

    `holds_none`: the caller knows the moderator holds no item (they have just decided the one
    they held: a moderator holds one item at most), so the look for it is skipped.

    One moderator per item: on PostgreSQL the row is locked with SKIP LOCKED, so concurrent
    moderators each take a different row without waiting. SQLite has no row locks, so there
    the claim is a conditional update that succeeds for exactly one of the racers.
    """
    held = None if holds_none else item_get_held(moderator=moderator)
    if held is not None:
        return held
    # Second decisions and gold items come before the main queue (review.task_claims).
    task = task_claim_next(moderator=moderator)
    if task is not None:
        return task.item
    now = timezone.now()
    until = now + timedelta(minutes=settings.CLAIM_MINUTES)
    if connection.features.has_select_for_update_skip_locked:
        # A claim is a lease, not a record: were the server to crash in the moment before its
        # commit reaches the disk, the item would simply be open again (with its audit row),
        # and a decision checks who holds the item anyway. So a claim committed on its own does
        # not wait for the flush; inside a caller's transaction it must not, as that would
        # cover their writes.
        lease_only = connection.vendor == "postgresql" and not connection.in_atomic_block
        with transaction.atomic():
            if lease_only:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            state = (
                review_state_list_open(moderator=moderator)
                .select_related("item")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if state is None:
                return None
            holder = None if state.state == State.QUEUED else claim_holder(state)
            state.state, state.claimed_by, state.claimed_until = State.CLAIMED, moderator, until
            state.grid = False
            state.save(update_fields=["state", "claimed_by", "claimed_until", "grid", "updated_at"])
            _claimed(state, moderator, holder)
            return state.item
    candidates = review_state_list_open(moderator=moderator).values_list(
        "pk", "state", "claimed_by__username"
    )
    for candidate, old_state, old_holder in candidates[:50]:
        with transaction.atomic():
            won = (
                ReviewState.objects.filter(pk=candidate)
                .filter(Q(state=State.QUEUED) | Q(state=State.CLAIMED, claimed_until__lt=now))
                .update(
                    state=State.CLAIMED,
                    claimed_by=moderator,
                    claimed_until=until,
                    grid=False,
                    updated_at=now,
                )
            )
            if won:
                state = ReviewState.objects.select_related("item").get(pk=candidate)
                _claimed(state, moderator, old_holder if old_state == State.CLAIMED else None)
                return state.item
    return None


@transaction.atomic
def item_skip(*, item: MediaItem, moderator: AbstractBaseUser) -> ReviewTask | None:
    """Pass on an item: others get it, this moderator does not see it again for a while.
    Returns the task given back with it, if the item was one (undo takes that task back)."""
    task = task_get_held(moderator=moderator, item=item)
    if task is not None:
        task_give_back(task=task, moderator=moderator, outcome="skipped")
    Skip.objects.create(
        item=item, moderator=moderator, until=timezone.now() + timedelta(hours=settings.SKIP_HOURS)
    )
    _give_back(item, moderator, State.QUEUED, "skipped")
    return task


@transaction.atomic
def item_skip_undo(
    *, item: MediaItem, moderator: AbstractBaseUser, task_id: int | None = None
) -> MediaItem:
    """Take back an item this moderator skipped (`u` after `s`), by the rules of any claim: a
    lease that ran out is taken over, but an item someone else holds now, or that has been
    decided since, is refused with the reason. `task_id`: the task the skip gave back.

    The skip ends: the moderator asked for the item again, so it is served to them as before.
    """
    if task_id is not None:
        _task_take_back(item, moderator, task_id)
    else:
        _state_take_back(item, moderator)
    now = timezone.now()
    Skip.objects.filter(item=item, moderator=moderator, until__gt=now).update(until=now)
    return item


def _state_take_back(item: MediaItem, moderator: AbstractBaseUser) -> None:
    state = (
        ReviewState.objects.select_for_update(of=("self",))
        .select_related("claimed_by")
        .filter(item=item)
        .first()
    )
    if state is None or state.state == State.WAITING:
        # A decision waits for its second half, decided blind: who made it is not said.
        raise DecisionError("it has been decided since")
    if state.state == State.DONE:
        raise DecisionError(_decided_since(item, moderator))
    if held_by_other(state, moderator):
        raise DecisionError(f"{claim_holder(state)} holds it now")
    now = timezone.now()
    expired = state.state == State.CLAIMED and state.claimed_by_id not in (None, moderator.pk)
    old = f"claimed by {claim_holder(state)} (expired)" if expired else state.state
    # The same condition as a claim's, so that a racer who took it meanwhile keeps it (SQLite
    # has no row lock to hold for us).
    won = (
        ReviewState.objects.filter(pk=state.pk)
        .filter(
            Q(state=State.QUEUED)
            | Q(state=State.CLAIMED, claimed_until__lt=now)
            | Q(state=State.CLAIMED, claimed_by=moderator)
        )
        .update(
            state=State.CLAIMED,
            claimed_by=moderator,
            claimed_until=now + timedelta(minutes=settings.CLAIM_MINUTES),
            grid=False,
            updated_at=now,
        )
    )
    if not won:
        raise DecisionError("someone else took it a moment ago")
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=item,
        old=old,
        new=f"claimed by {moderator.get_username()} (skip undone)",
    )


def _task_take_back(item: MediaItem, moderator: AbstractBaseUser, task_id: int) -> None:
    """Take back the task a skip gave back. The skip opened it again for others, who may hold
    or have decided it since; a gold item it closed unscored, and that one opens again for
    this moderator alone, as if never skipped."""
    task = (
        ReviewTask.objects.select_for_update(of=("self",))
        .select_related("claimed_by")
        .filter(pk=task_id, item=item)
        .first()
    )
    if task is None:
        raise DecisionError("it is no longer waiting for a decision")
    now = timezone.now()
    if task.kind == ReviewTask.Kind.GOLD:
        takeable = Q(assigned_to=moderator, state=TaskState.DONE, outcome="skipped")
    else:
        if task.state == TaskState.DONE:
            raise DecisionError("it has been decided since")
        others = task.state == TaskState.CLAIMED and task.claimed_by_id != moderator.pk
        if others and task.claimed_until is not None and task.claimed_until >= now:
            raise DecisionError(f"{task.claimed_by.get_username()} holds it now")
        takeable = (
            Q(state=TaskState.OPEN)
            | Q(state=TaskState.CLAIMED, claimed_until__lt=now)
            | Q(state=TaskState.CLAIMED, claimed_by=moderator)
        )
    won = (
        ReviewTask.objects.filter(pk=task.pk)
        .filter(takeable)
        .update(
            state=TaskState.CLAIMED,
            claimed_by=moderator,
            claimed_until=now + timedelta(minutes=settings.CLAIM_MINUTES),
            outcome="",
            closed_at=None,
        )
    )
    if not won:
        raise DecisionError("it has been decided since")
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=item,
        old=f"{task.get_kind_display()} {task.state}",
        new=f"claimed by {moderator.get_username()} (skip undone)",
        task=task.pk,
    )


def _decided_since(item: MediaItem, moderator: AbstractBaseUser) -> str:
    """Who closed the review of a skipped item: its current label's moderator, or why it
    closed without one (a purge)."""
    if item.purged_at is not None:
        return "its content has been purged"
    label = label_get_current(item=item)
    if label is None:
        return "its review has been closed since"
    if label.moderator_id == moderator.pk:
        return "you have decided it since"
    who = label.moderator.get_username() if label.moderator else label.origin
    return f"{who} decided it since"


@transaction.atomic
def item_release(*, item: MediaItem, moderator: AbstractBaseUser) -> None:
    """Give back a claim without a decision or a skip (undo moves to an earlier item).

    A decided item goes back to done, an undecided one to the queue, so a moderator holds
    at most the item in front of them.
    """
    task = task_get_held(moderator=moderator, item=item)
    if task is not None:
        task_give_back(task=task, moderator=moderator, outcome="released")
        return
    state = State.DONE if item.labels.exists() else State.QUEUED
    _give_back(item, moderator, state, "released")


def _give_back(item: MediaItem, moderator: AbstractBaseUser, state: str, outcome: str) -> None:
    given = ReviewState.objects.filter(item=item, claimed_by=moderator, state=State.CLAIMED).update(
        state=state, claimed_by=None, claimed_until=None, updated_at=timezone.now()
    )
    if given:
        audit_record(
            action=Action.CLAIM,
            actor=moderator,
            item=item,
            old=f"claimed by {moderator.get_username()}",
            new=f"{state} ({outcome})",
        )


@transaction.atomic
def item_reopen(*, item: MediaItem, moderator: AbstractBaseUser) -> MediaItem:
    """Take back an item whose current label is this moderator's, to decide again (a new
    label supersedes it). Refused while another moderator holds it, or when someone has
    relabelled it since."""
    state = (
        ReviewState.objects.select_for_update(of=("self",))
        .select_related("claimed_by")
        .filter(item=item)
        .first()
    )
    current = label_get_current(item=item)
    if current is None or not item.labels.filter(moderator=moderator).exists():
        raise DecisionError("you have not decided this item")
    if current.moderator_id != moderator.pk:
        who = current.moderator.get_username() if current.moderator else current.origin
        raise DecisionError(f"{who} has relabelled it since your decision")
    if held_by_other(state, moderator):
        raise DecisionError(f"{claim_holder(state)} holds it now")
    old = "none" if state is None else state.state
    ReviewState.objects.update_or_create(
        item=item,
        defaults={
            "state": State.CLAIMED,
            "claimed_by": moderator,
            "claimed_until": timezone.now() + timedelta(minutes=settings.CLAIM_MINUTES),
        },
    )
    audit_record(
        action=Action.CLAIM,
        actor=moderator,
        item=item,
        old=old,
        new=f"claimed by {moderator.get_username()} (undo)",
    )
    return item
