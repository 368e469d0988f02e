"""Grid review: a page of main-queue items claimed at once, each with its own lease, decided in
bulk (one decision per item, path `grid`) or left for single review.

A grid page is taken by POST only (`grid_claim`); `grid_items_held` is the read a GET may make.
Claiming a page first gives back the moderator's previous grid page, so a moderator holds one
grid page at most (beside the review page's one item, which is never a grid claim).

Gold, confirmation, second-look, double-review and adjudication items never appear: gold and
task items are not in the main queue (labelled, or waiting), and any item with an open task or
chosen for blind double review is left out here as well. Items a "confirm suggested" left out
(a down-class warning, no suggestion) wait for single review: no later grid page shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from moderation.audit.services import Action, audit_event, audit_write
from moderation.inference.models import ModelVersion, Prediction
from moderation.inference.selectors import prediction_get_shown
from moderation.media.models import MediaItem
from moderation.review.decisions import DecisionError, claim_holder
from moderation.review.labels import label_get_current
from moderation.review.models import Decision, GoldItem, ReviewState, ReviewTask
from moderation.review.selectors import review_state_list_open
from moderation.review.summaries import PredictionSummary, prediction_summary
from moderation.review.workflow import decision_submit, double_review_selected

State = ReviewState.State
# How many open items (after the filters SQL can apply: source, suggestion, no open task) are
# read per claim for the filters applied in Python: the tags (a JSON list of [name, confidence],
# which SQLite and PostgreSQL query differently) and the double-review hash. A tag filter that
# matches nothing in the riskiest GRID_WINDOW items gives a short or empty page.
GRID_WINDOW = 2000
CONFIRM = "confirm"


@dataclass(frozen=True)
class GridFilters:
    suggested: int | None = None
    source: str = ""
    tags_include: tuple[str, ...] = ()
    tags_exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class GridCard:
    """An item of the page with what the card shows: the suggestion and its warnings."""

    item: MediaItem
    summary: PredictionSummary | None

    @property
    def warnings(self) -> list[str]:
        return [] if self.summary is None else self.summary.down_class_notes


@dataclass
class GridOutcome:
    """What a bulk action did: final decisions, pending ones (a big downgrade waits for a
    confirmation, a held moderator's for a second look) and the items left out, with why."""

    decided: int = 0
    pending: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (uid, why)


def _shown_suggestion() -> Subquery:
    """The suggested rating of the prediction a moderator is shown (`prediction_get_shown`)."""
    shown = Prediction.objects.filter(
        item_id=OuterRef("item_id"),
        model_version__status__in=(ModelVersion.Status.CHAMPION, ModelVersion.Status.FORMER),
    ).order_by("model_version__status", "-created_at", "-pk")
    return Subquery(shown.values("suggested_rating")[:1])


def _tag_names(item: MediaItem) -> set[str]:
    names = (tag[0] if isinstance(tag, list | tuple) else tag for tag in item.tags or [] if tag)
    return {str(name).casefold() for name in names}


def _matches(item: MediaItem, filters: GridFilters) -> bool:
    names = _tag_names(item)
    if any(t.casefold() not in names for t in filters.tags_include):
        return False
    if any(t.casefold() in names for t in filters.tags_exclude):
        return False
    return not double_review_selected(item)


def _candidates(moderator: AbstractBaseUser, filters: GridFilters) -> list[tuple[int, str]]:
    """Open items matching the filters, in queue order: (review state id, old state text)."""
    open_task = ReviewTask.objects.filter(item_id=OuterRef("item_id")).exclude(
        state=ReviewTask.State.DONE
    )
    rows = (
        review_state_list_open(moderator=moderator)
        .exclude(single_only=True)
        .exclude(Exists(open_task))
        .exclude(Exists(GoldItem.objects.filter(item_id=OuterRef("item_id"))))
        .exclude(item__purged_at__isnull=False)
        .select_related("item", "claimed_by")
    )
    if filters.source:
        rows = rows.filter(item__source=filters.source)
    if filters.suggested is not None:
        rows = rows.annotate(shown_suggestion=_shown_suggestion()).filter(
            shown_suggestion=filters.suggested
        )
    found = []
    for state in rows[:GRID_WINDOW]:
        if _matches(state.item, filters):
            expired = f"claimed by {claim_holder(state)} (expired)"
            old = "queued" if state.state == State.QUEUED else expired
            found.append((state.pk, old))
    return found


def _claim_batch(pks: list[int], moderator: AbstractBaseUser, until) -> list[int]:
    """Claim these review states for the moderator's grid page; returns the ones won.

    One moderator per item: on PostgreSQL the rows are locked with SKIP LOCKED, so another
    moderator's page being claimed at the same moment is passed over, not waited on. SQLite has
    no row locks: there the conditional update (still open?) succeeds for one racer only, under
    SQLite's single writer. Either way the winners are read back by their new claim.
    """
    now = timezone.now()
    still_open = Q(state=State.QUEUED) | Q(state=State.CLAIMED, claimed_until__lt=now)
    with transaction.atomic():
        rows = ReviewState.objects.filter(pk__in=pks).filter(still_open)
        if connection.features.has_select_for_update_skip_locked:
            locked = rows.select_for_update(skip_locked=True, of=("self",)).only("pk")
            rows = ReviewState.objects.filter(pk__in=[r.pk for r in locked]).filter(still_open)
        claim = {"state": State.CLAIMED, "claimed_by": moderator, "claimed_until": until}
        rows.update(**claim, grid=True, updated_at=now)
        won = ReviewState.objects.filter(pk__in=pks, grid=True, **claim)
        return list(won.values_list("pk", flat=True))


def grid_claim(
    *, moderator: AbstractBaseUser, filters: GridFilters, size: int | None = None
) -> list[MediaItem]:
    """Give back this moderator's grid page, then claim up to `size` open main-queue items that
    match the filters, riskiest first, each with a lease of CLAIM_MINUTES and an audit row."""
    size = settings.GRID_PAGE_SIZE if size is None else size
    grid_release(moderator=moderator)
    candidates = _candidates(moderator, filters)
    old_of = dict(candidates)
    until = timezone.now() + timedelta(minutes=settings.CLAIM_MINUTES)
    won: list[int] = []
    tried = 0
    # Rows another moderator took meanwhile are lost: the next batch fills their places.
    while len(won) < size and tried < len(candidates):
        batch = [pk for pk, _ in candidates[tried : tried + size - len(won)]]
        tried += len(batch)
        got = _claim_batch(batch, moderator, until)
        states = ReviewState.objects.filter(pk__in=got).select_related("item")
        audit_write(
            [
                audit_event(
                    action=Action.CLAIM,
                    actor=moderator,
                    item=s.item,
                    old=old_of[s.pk],
                    new=f"claimed by {moderator.get_username()} (grid)",
                )
                for s in states
            ]
        )
        won += got
    return [card.item for card in grid_items_held(moderator=moderator)]


def grid_items_held(*, moderator: AbstractBaseUser) -> list[GridCard]:
    """The items of this moderator's grid page whose lease runs, in queue order, with their
    suggestion and warnings. Changes nothing."""
    states = (
        ReviewState.objects.filter(
            claimed_by=moderator, state=State.CLAIMED, grid=True, claimed_until__gte=timezone.now()
        )
        .select_related("item")
        .order_by("-priority", "item_id")
    )
    cards = []
    for state in states:
        prediction = prediction_get_shown(item_id=state.item_id)
        summary = None if prediction is None else prediction_summary(prediction)
        cards.append(GridCard(item=state.item, summary=summary))
    return cards


def grid_release(
    *, moderator: AbstractBaseUser, item_ids: list[int] | None = None, single_only: bool = False
) -> int:
    """Give back this moderator's undecided grid claims (all, or these items), expired ones
    included, to the queue; one audit row each. `single_only`: they were left out of a confirm
    and wait for single review, which their audit rows say. Returns how many went back."""
    now = timezone.now()
    with transaction.atomic():
        rows = ReviewState.objects.filter(claimed_by=moderator, state=State.CLAIMED, grid=True)
        if item_ids is not None:
            rows = rows.filter(item_id__in=item_ids)
        pks = list(rows.select_for_update(of=("self",)).values_list("pk", flat=True))
        ReviewState.objects.filter(pk__in=pks).update(
            state=State.QUEUED,
            claimed_by=None,
            claimed_until=None,
            grid=False,
            updated_at=now,
            **({"single_only": True} if single_only else {}),
        )
        states = ReviewState.objects.filter(pk__in=pks).select_related("item")
        audit_write(
            [
                audit_event(
                    action=Action.CLAIM,
                    actor=moderator,
                    item=s.item,
                    old=f"claimed by {moderator.get_username()} (grid)",
                    new="queued for single review" if single_only else "queued (released)",
                )
                for s in states
            ]
        )
    return len(pks)


def grid_decide(*, moderator: AbstractBaseUser, uids: list[str], action: str | int) -> GridOutcome:
    """Decide the selected items of the moderator's grid page, one decision each (path grid),
    each in its own transaction, so a refusal leaves the others recorded.

    `action` is CONFIRM (each item's suggested rating; an item with a down-class warning, or
    without a suggestion, is left out and goes back to the queue for single review) or a rating
    level set for all, which goes through the big-downgrade rule item by item."""
    outcome = GridOutcome()
    held = {
        str(s.item.uid): s.item
        for s in ReviewState.objects.filter(
            item__uid__in=uids, claimed_by=moderator, state=State.CLAIMED, grid=True
        ).select_related("item")
    }
    back: list[int] = []
    for uid in uids:
        item = held.get(str(uid))
        if item is None:
            outcome.skipped.append((str(uid), "not on your grid page any more"))
            continue
        level = action
        if action == CONFIRM:
            prediction = prediction_get_shown(item_id=item.pk)
            why = "" if prediction is not None else "no suggestion"
            if prediction is not None and prediction_summary(prediction).down_class_notes:
                why = "down-class warning: left for single review"
            if why:
                outcome.skipped.append((str(uid), why))
                back.append(item.pk)
                continue
            level = prediction.suggested_rating
        try:
            submitted = decision_submit(
                item=item,
                level=int(level),
                moderator=moderator,
                saw_label=label_get_current(item=item, with_moderator=False),
                grid=True,
            )
        except DecisionError as error:
            outcome.skipped.append((str(uid), str(error)))
            continue
        if submitted.decision is not None and submitted.decision.status == Decision.Status.PENDING:
            outcome.pending += 1
        else:
            outcome.decided += 1
    if back:
        grid_release(moderator=moderator, item_ids=back, single_only=True)
    return outcome
