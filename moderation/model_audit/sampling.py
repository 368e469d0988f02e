"""Model audit sessions: which recent items an admin audits, and serving them one at a time.

Two modes, both over items received in the last `days`, not purged, that the champion has
rated (its own prediction, not a former champion's), with no audit open on them already and not
audited before on the same prediction:

- **triggered**: the champion's suggested rating is R or above. Auditing them checks for false
  positives (precision).
- **near-miss**: the champion's suggested rating and the MLP's rating are both below R, and the
  MLP's best probability of a rating of R or above is within `MODEL_AUDIT_MARGIN` of its top
  probability: `p[top] - max(p[R], p[X], p[XXX]) <= margin`. The MLP rates by arg-max, so that
  gap is exactly how much probability had to move from its rating to an R-or-above rating to
  make the MLP (and with it a suggestion that follows it) trigger. Auditing them checks for
  false negatives (the misses the down-class rule cares about).

Each sampled item gets a `ReviewTask` of kind audit assigned to the admin, open. The audit page
claims the next one by POST with a lease (`CLAIM_MINUTES`); a GET changes nothing. The
decision goes through `review.workflow.task_decide`: an admin's final decision over the current
label (path audit), with its label and audit rows like any other.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from moderation.audit.services import Action, audit_event, audit_record, audit_write
from moderation.inference.bundles import champion
from moderation.inference.models import Prediction
from moderation.model_audit.models import AuditSample, AuditSession
from moderation.review.decisions import DecisionConflict
from moderation.review.labels import label_get_current
from moderation.review.models import Label, ReviewState, ReviewTask
from moderation.review.task_claims import task_get_held
from moderation.review.workflow import Submitted, task_decide

Mode = AuditSession.Mode
Kind = ReviewTask.Kind
TaskState = ReviewTask.State
R = 4  # the lowest rating that "triggers"
R_INDEX = 2  # its class index in `mlp_probs` (PG, PG13, R, X, XXX)
AUDITED, SKIPPED, PURGED = "audited", "skipped", "purged"
# Near-miss candidates are filtered in Python (the probabilities are JSON): at most this many
# of the newest are read, so a session over a long period stays a bounded read.
NEAR_MISS_SCAN = 20_000
MAX_SIZE = 200


class AuditError(ValueError):
    """An audit that cannot be started or served; the message says why, for the admin."""


def near_miss_gap(*, mlp_rating: int, mlp_probs: list[float]) -> float | None:
    """How much more probability an R-or-above rating needed to become the MLP's arg-max:
    the MLP's probability of its rating minus its best probability of R, X or XXX. None when
    the MLP rated R or above already, or the probabilities are not the five of a prediction."""
    if mlp_rating >= R or not isinstance(mlp_probs, list) or len(mlp_probs) != 5:
        return None
    levels = [1, 2, 4, 8, 16]
    if mlp_rating not in levels:
        return None
    top = float(mlp_probs[levels.index(mlp_rating)])
    return top - max(float(p) for p in mlp_probs[R_INDEX:])


def is_near_miss(*, prediction: Prediction, margin: float) -> bool:
    if prediction.suggested_rating >= R:
        return False
    gap = near_miss_gap(mlp_rating=prediction.mlp_rating, mlp_probs=prediction.mlp_probs)
    return gap is not None and gap <= margin


def _candidates(*, days: int) -> QuerySet[Prediction]:
    version = champion()
    if version is None:
        raise AuditError("no model is champion yet: there is nothing to audit")
    open_audit = ReviewTask.objects.filter(item=OuterRef("item"), kind=Kind.AUDIT).exclude(
        state=TaskState.DONE
    )
    # Skipped samples may be drawn again; an audited one is counted once per prediction.
    sampled = AuditSample.objects.filter(prediction=OuterRef("pk")).exclude(task__outcome=SKIPPED)
    return (
        Prediction.objects.filter(
            model_version=version,
            item__received_at__gte=timezone.now() - timedelta(days=days),
            item__purged_at__isnull=True,
        )
        .exclude(Exists(open_audit))
        .exclude(Exists(sampled))
    )


def audit_sample(
    *, mode: str, size: int, days: int, margin: float
) -> list[tuple[int, int, float | None]]:
    """(prediction id, item id, near-miss gap) of up to `size` items drawn at random from
    those that fit the mode. Changes nothing."""
    candidates = _candidates(days=days)
    if mode == Mode.TRIGGERED:
        rows = candidates.filter(suggested_rating__gte=R).order_by("?")[:size]
        return [(pk, item_id, None) for pk, item_id in rows.values_list("pk", "item_id")]
    if mode != Mode.NEAR_MISS:
        raise AuditError(f"unknown audit mode {mode!r}")
    rows = (
        candidates.filter(suggested_rating__lt=R, mlp_rating__lt=R)
        .order_by("-item__received_at", "-pk")
        .values_list("pk", "item_id", "mlp_rating", "mlp_probs")[:NEAR_MISS_SCAN]
    )
    near = []
    for pk, item_id, mlp_rating, mlp_probs in rows:
        gap = near_miss_gap(mlp_rating=mlp_rating, mlp_probs=mlp_probs)
        if gap is not None and gap <= margin:
            near.append((pk, item_id, gap))
    return random.sample(near, min(size, len(near)))


def audit_session_start(
    *, admin: AbstractBaseUser, mode: str, size: int, days: int, margin: float | None = None
) -> AuditSession:
    """Sample up to `size` items for the mode and open an audit task on each, assigned to
    `admin`. Raises `AuditError` when no item fits (nothing is written then)."""
    if not 1 <= size <= MAX_SIZE or days < 1:
        raise AuditError(f"a session has 1 to {MAX_SIZE} items, over 1 day or more")
    margin = settings.MODEL_AUDIT_MARGIN if margin is None else margin
    drawn = audit_sample(mode=mode, size=size, days=days, margin=margin)
    if not drawn:
        raise AuditError(f"no item received in the last {days} days fits a {mode} audit")
    with transaction.atomic():
        session = AuditSession.objects.create(
            admin=admin,
            mode=mode,
            size=size,
            days=days,
            margin=margin if mode == Mode.NEAR_MISS else None,
        )
        reason = f"model audit #{session.pk}: {session.get_mode_display()}"
        events = []
        for prediction_id, item_id, gap in drawn:
            try:
                with transaction.atomic():  # another admin's session took it meanwhile
                    task = ReviewTask.objects.create(
                        item_id=item_id, kind=Kind.AUDIT, reason=reason, assigned_to=admin
                    )
            except IntegrityError:
                continue
            AuditSample.objects.create(
                session=session, task=task, prediction_id=prediction_id, gap=gap
            )
            events.append(
                audit_event(
                    action=Action.TASK,
                    actor=admin,
                    item=task.item,
                    old="",
                    new="model audit opened",
                    reason=reason,
                    task=task.pk,
                )
            )
        if not events:
            raise AuditError("every item drawn is being audited in another session")
        audit_write(events)
    return session


def _lease() -> timezone.datetime:
    return timezone.now() + timedelta(minutes=settings.CLAIM_MINUTES)


def _close(task: ReviewTask, admin: AbstractBaseUser, outcome: str) -> None:
    ReviewTask.objects.filter(pk=task.pk).update(
        state=TaskState.DONE,
        outcome=outcome,
        claimed_by=None,
        claimed_until=None,
        closed_at=timezone.now(),
    )
    audit_record(
        action=Action.TASK,
        actor=admin,
        item=task.item,
        old=f"claimed by {admin.get_username()}",
        new=f"model audit: {outcome}",
        task=task.pk,
    )


def audit_next(*, admin: AbstractBaseUser) -> ReviewTask | None:
    """The audit task this admin holds, or the next of theirs claimed with a lease (oldest
    session first), or None when none is left. A purged item's task is closed unaudited."""
    held = task_get_held(moderator=admin, audit=True)
    if held is not None:
        return held
    now = timezone.now()
    claimable = Q(state=TaskState.OPEN) | Q(state=TaskState.CLAIMED, claimed_until__lt=now)
    ids = list(
        ReviewTask.objects.filter(claimable, kind=Kind.AUDIT, assigned_to=admin)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:50]
    )
    for pk in ids:
        with transaction.atomic():
            won = ReviewTask.objects.filter(claimable, pk=pk).update(
                state=TaskState.CLAIMED, claimed_by=admin, claimed_until=_lease()
            )
            if not won:
                continue
            task = ReviewTask.objects.select_related("item").get(pk=pk)
            if task.item.is_purged:
                _close(task, admin, PURGED)
                continue
            audit_record(
                action=Action.CLAIM,
                actor=admin,
                item=task.item,
                old="model audit open",
                new=f"claimed by {admin.get_username()}",
                task=task.pk,
            )
            return task
    return None


@transaction.atomic
def audit_decide(
    *, task: ReviewTask, level: int, admin: AbstractBaseUser, seen: Label | None, reason: str = ""
) -> Submitted:
    """The admin's rating of an audited item, through `task_decide` (final, path audit). A
    label written since the page showed the item (`seen`: the label it had then) is a
    conflict: nothing is written, and the admin rates again knowing of it."""
    # The same lock `decision_record` takes: no label lands between this check and the write.
    ReviewState.objects.select_for_update().filter(item_id=task.item_id).first()
    current = label_get_current(item=task.item)
    if current is not None and (seen is None or seen.pk != current.pk):
        raise DecisionConflict(current)
    return task_decide(task=task, level=level, moderator=admin, reason=reason)


@transaction.atomic
def audit_skip(*, task: ReviewTask, admin: AbstractBaseUser) -> None:
    """Close a held audit task without a decision: it is not counted, and its item may be
    drawn again by a later session."""
    if task.claimed_by_id != admin.pk or task.state != TaskState.CLAIMED:
        raise AuditError("you do not hold this item")
    _close(task, admin, SKIPPED)


def audit_session_list() -> QuerySet[AuditSession]:
    """Every session, newest first, with its progress: items sampled, done, audited."""
    return AuditSession.objects.select_related("admin").annotate(
        sampled=Count("samples"),
        done=Count("samples", filter=Q(samples__task__state=TaskState.DONE)),
        audited=Count("samples", filter=Q(samples__task__outcome=AUDITED)),
    )


def audit_sample_for_task(*, task: ReviewTask) -> AuditSample | None:
    return AuditSample.objects.select_related("session").filter(task=task).first()
