"""State changes of the review queue: claims, skips, labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.models import Label, ReviewState, Skip
from moderation.review.queue import down_class_risk
from moderation.review.selectors import review_state_list_open
from rating_models.ratings import parse_label

State = ReviewState.State


def review_priorities_update(*, item_ids: Sequence[int], version: ModelVersion) -> None:
    """Set the queue priority of items from the version's predictions."""
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


def item_claim_next(*, moderator: AbstractBaseUser) -> MediaItem | None:
    """Claim the riskiest open item for this moderator, or give back the one they hold.

    One moderator per item: on PostgreSQL the row is locked with SKIP LOCKED, so concurrent
    moderators each take a different row without waiting. SQLite has no row locks, so there
    the claim is a conditional update that succeeds for exactly one of the racers.
    """
    now = timezone.now()
    held = ReviewState.objects.filter(
        claimed_by=moderator, state=State.CLAIMED, claimed_until__gte=now
    ).first()
    if held is not None:
        return held.item
    until = now + timedelta(minutes=settings.CLAIM_MINUTES)
    if connection.features.has_select_for_update_skip_locked:
        # A claim is a lease, not a record: were the server to crash in the moment before its
        # commit reaches the disk, the item would simply be open again, and a decision checks
        # who holds the item anyway. So a claim committed on its own does not wait for the
        # flush; inside a caller's transaction it must not, as that would cover their writes.
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
            state.state, state.claimed_by, state.claimed_until = State.CLAIMED, moderator, until
            state.save(update_fields=["state", "claimed_by", "claimed_until", "updated_at"])
            return state.item
    for candidate in review_state_list_open(moderator=moderator).values_list("pk", flat=True)[:50]:
        won = (
            ReviewState.objects.filter(pk=candidate)
            .filter(Q(state=State.QUEUED) | Q(state=State.CLAIMED, claimed_until__lt=now))
            .update(state=State.CLAIMED, claimed_by=moderator, claimed_until=until, updated_at=now)
        )
        if won:
            return ReviewState.objects.get(pk=candidate).item
    return None


@transaction.atomic
def item_skip(*, item: MediaItem, moderator: AbstractBaseUser) -> None:
    """Pass on an item: others get it, this moderator does not see it again for a while."""
    Skip.objects.create(
        item=item, moderator=moderator, until=timezone.now() + timedelta(hours=settings.SKIP_HOURS)
    )
    ReviewState.objects.filter(item=item, claimed_by=moderator, state=State.CLAIMED).update(
        state=State.QUEUED, claimed_by=None, claimed_until=None, updated_at=timezone.now()
    )


class LabelError(ValueError):
    """A decision that cannot be recorded."""


@transaction.atomic
def label_create(
    *, item: MediaItem, level: int, moderator: AbstractBaseUser | None, origin: str = "moderator"
) -> Label:
    """Record a decision. It supersedes the item's current label, closes its review and
    releases the claim; it notes whether the champion's voter and MLP agreed."""
    try:
        decision = parse_label(level)
    except ValueError as error:
        raise LabelError(str(error)) from None
    state = ReviewState.objects.select_for_update().filter(item=item).first()
    if (
        moderator is not None
        and state is not None
        and state.state == State.CLAIMED
        and state.claimed_by_id not in (None, moderator.pk)
        and state.claimed_until is not None
        and state.claimed_until >= timezone.now()
    ):
        raise LabelError("another moderator holds this item")
    previous = item.labels.order_by("-created_at", "-pk").first()
    prediction = (
        Prediction.objects.filter(item=item, model_version__status=ModelVersion.Status.CHAMPION)
        .select_related("model_version")
        .first()
    )
    label = Label.objects.create(
        item=item,
        level=decision.level,
        moderator=moderator,
        origin=origin,
        supersedes=previous,
        prediction=prediction,
        agreed_with_voter=None if prediction is None else prediction.voter_rating == decision.level,
        agreed_with_mlp=None if prediction is None else prediction.mlp_rating == decision.level,
    )
    ReviewState.objects.update_or_create(
        item=item,
        defaults={"state": State.DONE, "claimed_by": None, "claimed_until": None},
    )
    return label


@transaction.atomic
def item_reopen(*, item: MediaItem, moderator: AbstractBaseUser) -> MediaItem:
    """Take back an item this moderator decided, to decide again (a superseding label)."""
    if not item.labels.filter(moderator=moderator).exists():
        raise LabelError("you have not decided this item")
    ReviewState.objects.filter(item=item).update(
        state=State.CLAIMED,
        claimed_by=moderator,
        claimed_until=timezone.now() + timedelta(minutes=settings.CLAIM_MINUTES),
        updated_at=timezone.now(),
    )
    return item


@transaction.atomic
def item_release(*, item: MediaItem, moderator: AbstractBaseUser) -> None:
    """Give back a claim without a decision or a skip (undo moves to an earlier item).

    A decided item goes back to done, an undecided one to the queue, so a moderator holds
    at most the item in front of them.
    """
    state = State.DONE if item.labels.exists() else State.QUEUED
    ReviewState.objects.filter(item=item, claimed_by=moderator, state=State.CLAIMED).update(
        state=state, claimed_by=None, claimed_until=None, updated_at=timezone.now()
    )
