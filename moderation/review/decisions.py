"""Decisions and the labels they write: nothing about an item is ever overwritten.

Every act on an item is an append-only `Decision` naming the label it saw. A final decision
writes the item's new label (superseding the one it saw), closes its review and writes the
audit rows; a pending one writes nothing else. When a final label landed after the one a
decision saw, the decision is a conflict: nothing is written, and the moderator is shown the
newer label and may confirm theirs as a deliberate correction, with a reason.

Paths: `review` (the review page: only on an item the moderator holds), `grid` (only on an
item of the moderator's grid page), `correction` (over a newer label, with a reason; refused
while another moderator holds the item), `import` (the rating an item arrived with), `admin`
(an admin's tools and the shell), and the second decisions of `review.workflow`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.audit.services import Action, audit_event, audit_write
from moderation.inference.selectors import prediction_get_shown
from moderation.media.models import MediaItem
from moderation.review.labels import label_get_current
from moderation.review.models import Decision, Label, ReviewState
from moderation.review.queue import level_label
from rating_models.ratings import parse_label

State = ReviewState.State
Path = Decision.Path
# `saw_label` for writers that act on whatever is current (imports, admin tools).
CURRENT = object()


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why, for the moderator."""


class DecisionConflict(DecisionError):
    """A final label landed after the label the decision saw; nothing was written."""

    def __init__(self, newer: Label) -> None:
        self.newer = newer
        who = newer.moderator.get_username() if newer.moderator else newer.origin
        super().__init__(
            f"{who} decided this item as {level_label(newer.level)} after you opened it"
        )


def claim_holder(state: ReviewState | None) -> str:
    """Who holds the item, for a message ("nobody" when it is not held)."""
    if state is None or state.state != State.CLAIMED or state.claimed_by is None:
        return "nobody"
    return state.claimed_by.get_username()


def held_by_other(state: ReviewState | None, moderator: AbstractBaseUser) -> bool:
    """Whether another moderator holds the item now (an unexpired claim)."""
    return (
        state is not None
        and state.state == State.CLAIMED
        and state.claimed_by_id not in (None, moderator.pk)
        and state.claimed_until is not None
        and state.claimed_until >= timezone.now()
    )


def _check_hold(state: ReviewState | None, moderator: AbstractBaseUser, path: str) -> None:
    if path == Path.REVIEW and (
        state is None or state.state != State.CLAIMED or state.claimed_by_id != moderator.pk
    ):
        if held_by_other(state, moderator):
            raise DecisionError(f"{claim_holder(state)} holds this item now")
        raise DecisionError("you do not hold this item (take it from the queue first)")
    if path == Path.GRID and (
        state is None
        or state.state != State.CLAIMED
        or not state.grid
        or state.claimed_by_id != moderator.pk
    ):
        raise DecisionError("this item is not on your grid page any more")
    if path == Path.CORRECTION and held_by_other(state, moderator):
        raise DecisionError(f"{claim_holder(state)} holds this item now; try again later")


@transaction.atomic
def decision_record(
    *,
    item: MediaItem,
    level: int | str,
    moderator: AbstractBaseUser | None,
    path: str,
    saw_label: Label | object | None = CURRENT,
    reason: str = "",
    final: bool = True,
    origin: str = "moderator",
    status: str | None = None,
) -> Decision:
    """Record a decision; a final one writes the label. Raises `DecisionConflict` when a final
    label landed after `saw_label`, `DecisionError` for anything else refused.

    `status` other than final (`review.workflow` sets it): a pending decision waits for a
    second one and moves the item's review to waiting; a gold answer and a second look that
    confirms the current label write nothing else."""
    status = status or (Decision.Status.FINAL if final else Decision.Status.PENDING)
    final = status == Decision.Status.FINAL
    try:
        rating = parse_label(level)
    except ValueError as error:
        raise DecisionError(str(error)) from None
    reason = reason.strip()
    if path in (Path.REVIEW, Path.GRID, Path.CORRECTION) and moderator is None:
        raise DecisionError("only a moderator decides on the review page")
    if rating.level == Label.BLOCKED and not reason:
        raise DecisionError("say why the item is blocked")
    if path == Path.CORRECTION and not reason:
        raise DecisionError("say why your decision replaces the newer one")
    if getattr(item, "is_purged", False) and path != Path.ADMIN:
        raise DecisionError("this item's content was purged")
    # The lock serialises decisions on one item (SQLite's write lock does the same).
    state = ReviewState.objects.select_for_update().filter(item=item).first()
    current = label_get_current(item=item, with_moderator=False)
    saw = current if saw_label is CURRENT else saw_label
    if final and current is not None and (saw is None or saw.pk != current.pk):
        raise DecisionConflict(current)
    if final and current is None and saw is not None:  # cannot happen: labels are never deleted
        raise DecisionError("the label you saw is no longer this item's")
    if moderator is not None:
        _check_hold(state, moderator, path)
    decision = Decision.objects.create(
        item=item,
        moderator=moderator,
        origin=origin,
        path=path,
        level=rating.level,
        status=status,
        saw_label=saw,
        reason=reason,
    )
    if status == Decision.Status.PENDING:
        audit_write(_review_wait(item, state, moderator, decision))
    if not final:
        return decision
    label = _label_write(decision, current)
    events = [
        audit_event(
            action=Action.LABEL,
            actor=moderator,
            item=item,
            old=level_label(None if current is None else current.level),
            new=level_label(label.level),
            reason=reason,
            decision=decision.pk,
            label=label.pk,
            path=path,
        )
    ]
    if path == Path.CORRECTION and saw is not None:
        events.append(
            audit_event(
                action=Action.OVERRIDE,
                actor=moderator,
                item=item,
                old=level_label(saw.level),
                new=level_label(label.level),
                reason=reason,
                decision=decision.pk,
                label=label.pk,
                overrode_label=saw.pk,
            )
        )
    events += _review_close(item, state, moderator)
    # The label's, the override's and the review state's rows: one INSERT on the hot path.
    audit_write(events)
    return decision


def _label_write(decision: Decision, current: Label | None) -> Label:
    prediction = prediction_get_shown(item_id=decision.item_id)  # the one the moderator saw
    return Label.objects.create(
        item_id=decision.item_id,
        decision=decision,
        level=decision.level,
        moderator=decision.moderator,
        origin=decision.origin,
        supersedes=current,
        prediction=prediction,
        agreed_with_voter=None if prediction is None else prediction.voter_rating == decision.level,
        agreed_with_mlp=None if prediction is None else prediction.mlp_rating == decision.level,
    )


def _review_close(
    item: MediaItem, state: ReviewState | None, moderator: AbstractBaseUser | None
) -> list[AuditEvent]:
    """A final decision closes the item's review and ends any claim on it; returns the audit
    row of the change, if there was one."""
    if state is None:
        ReviewState.objects.create(item=item, state=State.DONE)
        old = "none"
    else:
        old = state.state
        if state.state == State.CLAIMED:
            mine = moderator is not None and state.claimed_by_id == moderator.pk
            old = f"claimed by {moderator.get_username() if mine else claim_holder(state)}"
        state.state, state.claimed_by, state.claimed_until = State.DONE, None, None
        state.grid = False
        state.save(update_fields=["state", "claimed_by", "claimed_until", "grid", "updated_at"])
    if old == State.DONE:
        return []
    return [
        audit_event(action=Action.REVIEW_STATE, actor=moderator, item=item, old=old, new="done")
    ]


def _review_wait(
    item: MediaItem,
    state: ReviewState | None,
    moderator: AbstractBaseUser | None,
    decision: Decision,
) -> list[AuditEvent]:
    """A pending decision ends its moderator's claim and leaves the item waiting for the
    second decision; its audit row names the decision, not its rating (the second is blind)."""
    old = "none" if state is None else state.state
    if state is None:
        ReviewState.objects.create(item=item, state=State.WAITING)
    elif state.state in (State.QUEUED, State.CLAIMED):
        if state.state == State.CLAIMED:
            old = f"claimed by {claim_holder(state)}"
        state.state, state.claimed_by, state.claimed_until = State.WAITING, None, None
        state.save(update_fields=["state", "claimed_by", "claimed_until", "updated_at"])
    else:
        return []
    return [
        audit_event(
            action=Action.REVIEW_STATE,
            actor=moderator,
            item=item,
            old=old,
            new="waiting",
            decision=decision.pk,
        )
    ]


def label_create(
    *,
    item: MediaItem,
    level: int | str,
    moderator: AbstractBaseUser | None = None,
    origin: str = "moderator",
    reason: str = "",
) -> Label:
    """A final decision by an import (no moderator) or an admin's tool, over whatever label is
    current; returns the label it wrote. The review page goes through `decision_record`."""
    if not reason and str(level) == str(Label.BLOCKED):
        reason = f"blocked by {moderator.get_username() if moderator else origin}"
    decision = decision_record(
        item=item,
        level=level,
        moderator=moderator,
        path=Path.IMPORT if moderator is None else Path.ADMIN,
        reason=reason,
        origin=origin if moderator is None else "moderator",
    )
    return decision.labels.get()
