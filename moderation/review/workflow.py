"""Which decisions are final, and the second decisions the others wait for.

A moderator's decision is final at once unless

- its moderator is held (too many gold misses): it waits for a second look;
- it is `BIG_DOWNGRADE_LEVELS` or more below the champion's suggested rating: it waits for a
  second moderator's blind confirmation;
- its item is one of the `DOUBLE_REVIEW_SHARE` chosen for blind double review, and it is the
  first answer: it waits for an independent second answer.

An admin's decision is always final. The second decision is a `ReviewTask`'s: the same rating
makes the item's label (written by the second decision), a different one sends both to an
admin's adjudication. A gold answer is scored and never becomes a label; a second look at a
likely label error either confirms the label or supersedes it (through the big-downgrade rule).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from moderation.audit.services import Action, audit_record
from moderation.inference.selectors import prediction_get_shown
from moderation.media.models import MediaItem
from moderation.review.decisions import CURRENT, DecisionError, decision_record
from moderation.review.decorators import is_admin
from moderation.review.gold import gold_outcome, hold_check, hold_get_standing
from moderation.review.models import Decision, Label, ReviewTask
from moderation.review.queue import level_label
from moderation.review.task_claims import task_get_held, task_open
from rating_models.ratings import Rating

Kind = ReviewTask.Kind
Path = Decision.Path
Status = Decision.Status

PATH_OF_KIND = {
    Kind.CONFIRMATION: Path.CONFIRMATION,
    Kind.SECOND_LOOK: Path.SECOND_LOOK,
    Kind.GOLD: Path.GOLD,
    Kind.DOUBLE: Path.DOUBLE,
    Kind.ADJUDICATION: Path.ADJUDICATION,
    Kind.AUDIT: Path.AUDIT,
}


@dataclass(frozen=True)
class Submitted:
    """A recorded decision (None: nothing was left to decide) and what happens next, for the
    moderator ("" when it is final)."""

    decision: Decision | None
    note: str = ""


def double_review_selected(item: MediaItem) -> bool:
    """Whether the item is one of the share decided by two moderators, fixed by a hash of its
    id (as its split is), so the first moderator's page can already hide what it must."""
    bucket = int(hashlib.sha256(f"{item.uid}/double".encode()).hexdigest(), 16) % 10_000
    return bucket < round(settings.DOUBLE_REVIEW_SHARE * 10_000)


def big_downgrade(*, item: MediaItem, level: int) -> str:
    """Why a decision at `level` is a big downgrade of the suggestion the moderator was shown
    ("" when it is not). Blocked is above every rating: never a downgrade."""
    if level == Label.BLOCKED:
        return ""
    prediction = prediction_get_shown(item_id=item.pk)
    if prediction is None:
        return ""
    steps = Rating.parse(prediction.suggested_rating).index - Rating.parse(level).index
    if steps < settings.BIG_DOWNGRADE_LEVELS:
        return ""
    return (
        f"{level_label(level)} is {steps} levels below the suggested "
        f"{level_label(prediction.suggested_rating)}"
    )


def _waits_for(
    *, item: MediaItem, level: int, moderator: AbstractBaseUser, path: str
) -> tuple[str, str] | None:
    """The task a moderator's decision waits for, with its reason; None: it is final."""
    if is_admin(moderator):
        return None
    if hold_get_standing(moderator=moderator) is not None:
        return Kind.SECOND_LOOK, "decided by a moderator held for a second look"
    if why := big_downgrade(item=item, level=level):
        return Kind.CONFIRMATION, f"big downgrade: {why}"
    if path == Path.REVIEW and double_review_selected(item) and not item.labels.exists():
        return Kind.DOUBLE, "blind double review"
    return None


NOTES = {
    Kind.SECOND_LOOK: "Recorded. While your hold stands, a second moderator checks it.",
    Kind.CONFIRMATION: "Recorded. A big downgrade: a second moderator confirms it first.",
    Kind.DOUBLE: "",  # the first answer of a double review is told nothing: it stays blind
    Kind.ADJUDICATION: "Recorded. The two decisions differ: an admin decides.",
}


@transaction.atomic
def decision_submit(
    *,
    item: MediaItem,
    level: int,
    moderator: AbstractBaseUser,
    saw_label: Label | None,
    reason: str = "",
    correction: bool = False,
    grid: bool = False,
) -> Submitted:
    """A moderator's decision from the review page: on the task they hold on the item, or on
    the main queue's item (or as a correction over a newer label); with `grid`, on an item of
    their grid page (the big-downgrade rule applies to it as to any). Raises `DecisionError` or
    `DecisionConflict` as `decision_record` does."""
    task = None if grid else task_get_held(moderator=moderator, item=item)
    if task is not None:
        return task_decide(task=task, level=level, moderator=moderator, reason=reason)
    path = Path.GRID if grid else Path.CORRECTION if correction else Path.REVIEW
    waits = _waits_for(item=item, level=level, moderator=moderator, path=path)
    decision = decision_record(
        item=item,
        level=level,
        moderator=moderator,
        path=path,
        saw_label=saw_label,
        reason=reason,
        status=Status.FINAL if waits is None else Status.PENDING,
    )
    if waits is None:
        return Submitted(decision)
    kind, why = waits
    task_open(item=item, kind=kind, reason=why, pending=decision, excluded=moderator)
    return Submitted(decision, NOTES[kind])


def task_decide(
    *, task: ReviewTask, level: int, moderator: AbstractBaseUser, reason: str = ""
) -> Submitted:
    """The second decision a task asks for, by the moderator who holds it."""
    if task.claimed_by_id != moderator.pk or task.state != ReviewTask.State.CLAIMED:
        raise DecisionError("you do not hold this task")
    admin = is_admin(moderator)
    if task.kind == Kind.ADJUDICATION and not admin:
        raise DecisionError("only an admin adjudicates")
    path = PATH_OF_KIND[task.kind]
    common = {"item": task.item, "level": level, "moderator": moderator, "reason": reason}
    if task.kind == Kind.GOLD:
        decision = decision_record(**common, path=path, saw_label=None, status=Status.GOLD)
        _close(task, decision, gold_outcome(settled=task.item.gold.level, answer=level))
        hold_check(moderator=moderator)
        return Submitted(decision)
    if task.kind == Kind.ADJUDICATION:
        decision = decision_record(**common, path=path, saw_label=CURRENT)
        _close(task, decision, "adjudicated")
        return Submitted(decision)
    if task.kind == Kind.AUDIT:  # an admin's: final, over whatever label is current
        if not admin:
            raise DecisionError("only an admin audits the model")
        decision = decision_record(**common, path=path, saw_label=CURRENT)
        _close(task, decision, "audited")
        return Submitted(decision)
    if task.pending_id is not None:
        return _second_answer(task, level, admin, common, path)
    return _second_look(task, level, admin, common, path)


def _second_answer(task: ReviewTask, level: int, admin: bool, common: dict, path: str) -> Submitted:
    """The answer to a pending decision: the same rating (or an admin's) is final, a
    different one goes to adjudication."""
    if admin or level == task.pending.level:
        decision = decision_record(**common, path=path, saw_label=CURRENT)
        _close(task, decision, "decided by an admin" if admin else "agreed")
        return Submitted(decision)
    decision = decision_record(**common, path=path, saw_label=CURRENT, status=Status.PENDING)
    _close(task, decision, "differed")
    task_open(
        item=task.item,
        kind=Kind.ADJUDICATION,
        reason=f"{task.get_kind_display()}: {level_label(task.pending.level)} and "
        f"{level_label(level)}",
        pending=task.pending,
        answer=decision,
    )
    return Submitted(decision, NOTES[Kind.ADJUDICATION])


def _second_look(task: ReviewTask, level: int, admin: bool, common: dict, path: str) -> Submitted:
    """A second look at a label: the same rating confirms it (no new label); another
    supersedes it, unless it is a big downgrade, which waits for a confirmation."""
    if Label.objects.filter(supersedes=task.label).exists():
        # Relabelled since the second look was asked: there is nothing left to look at.
        _close(task, None, "relabelled meanwhile", actor=common["moderator"])
        return Submitted(None, "Not recorded: the label was changed since this second look.")
    if level == task.label.level:
        decision = decision_record(
            **common, path=path, saw_label=task.label, status=Status.CONFIRMS
        )
        _close(task, decision, "confirmed")
        return Submitted(decision)
    why = "" if admin else big_downgrade(item=task.item, level=level)
    if why:
        decision = decision_record(**common, path=path, saw_label=task.label, status=Status.PENDING)
        _close(task, decision, "waits for confirmation")
        task_open(
            item=task.item,
            kind=Kind.CONFIRMATION,
            reason=f"big downgrade: {why}",
            pending=decision,
            excluded=common["moderator"],
        )
        return Submitted(decision, NOTES[Kind.CONFIRMATION])
    decision = decision_record(**common, path=path, saw_label=task.label)
    _close(task, decision, "relabelled")
    return Submitted(decision)


def _close(
    task: ReviewTask,
    decision: Decision | None,
    outcome: str,
    actor: AbstractBaseUser | None = None,
) -> None:
    actor = decision.moderator if decision is not None else actor
    old = f"claimed by {actor.get_username()}"
    task.state, task.outcome, task.closed_by = ReviewTask.State.DONE, outcome, decision
    task.claimed_by, task.claimed_until, task.closed_at = None, None, timezone.now()
    task.save(
        update_fields=["state", "outcome", "closed_by", "claimed_by", "claimed_until", "closed_at"]
    )
    audit_record(
        action=Action.TASK,
        actor=actor,
        item=task.item,
        old=old,
        new=f"{task.get_kind_display()}: {outcome}",
        task=task.pk,
        decision=None if decision is None else decision.pk,
    )
