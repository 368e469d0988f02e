"""The moderator's pages. Each URL answers with the whole page, or for htmx the panel to swap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from moderation.audit.selectors import audit_event_list_for_item
from moderation.audit.services import Action, audit_record
from moderation.inference.selectors import prediction_get_shown
from moderation.media.models import MediaItem
from moderation.review.claims import (
    item_claim_next,
    item_get_held,
    item_release,
    item_reopen,
    item_skip,
    item_skip_undo,
)
from moderation.review.decisions import DecisionConflict, DecisionError
from moderation.review.decorators import admin_required, is_admin, moderator_required
from moderation.review.explanations import explanation_view
from moderation.review.forms import DecisionForm, DisagreementFilterForm
from moderation.review.gold import gold_mark, gold_results, gold_weeks, hold_get_standing
from moderation.review.labels import label_get_current
from moderation.review.mine import adjudication_view, decision_list_mine, decision_outcomes
from moderation.review.models import Decision, Label, ReviewTask
from moderation.review.queue import level_label
from moderation.review.selectors import (
    QUEUE_SIZE_SHOWN,
    item_get_by_uid,
    item_label_list,
    item_prediction_list,
    label_get_previous,
    prediction_list_down_classed,
    review_queue_size,
)
from moderation.review.summaries import prediction_summary
from moderation.review.task_claims import BLIND, task_get_held
from moderation.review.workflow import decision_submit, double_review_selected
from rating_models.ratings import RATINGS

# The rating buttons and their hotkeys: 1 is PG ... 5 is XXX.
RATING_BUTTONS = [
    {"level": r.level, "label": r.label, "key": str(i + 1)} for i, r in enumerate(RATINGS)
]


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _panel_context(request: HtmxHttpRequest, item: MediaItem | None) -> dict:
    task = None if item is None else task_get_held(moderator=request.user, item=item)
    blind = task is not None and task.kind in BLIND
    # Both halves of a blind double review may be kept from the model's suggestion too.
    hide_model = (
        item is not None
        and not settings.DOUBLE_REVIEW_SHOWS_SUGGESTION
        and (
            (task is not None and task.kind == ReviewTask.Kind.DOUBLE)
            or (task is None and not item.labels.exists() and double_review_selected(item))
        )
    )
    prediction = None if item is None or hide_model else prediction_get_shown(item_id=item.pk)
    return {
        "item": item,
        "task": task,
        "blind": blind,
        "adjudication": adjudication_view(task),
        "summary": None if prediction is None else prediction_summary(prediction),
        "explanation": (
            None if prediction is None else explanation_view(prediction=prediction, item=item)
        ),
        # A gold item looks like any other: no "decided before" line on blind tasks.
        "current_label": None if item is None or blind else label_get_current(item=item),
        "queue_size": review_queue_size(moderator=request.user),
        "queue_size_shown": QUEUE_SIZE_SHOWN,
        "rating_buttons": RATING_BUTTONS,
        "blocked_level": Label.BLOCKED,
    }


def _render_panel(
    request: HtmxHttpRequest, item: MediaItem | None, *, status: int = 200
) -> HttpResponse:
    template = "review/partials/_panel.html" if request.htmx else "review/next.html"
    return render(request, template, _panel_context(request, item), status=status)


def _next_item(request: HtmxHttpRequest, *, holds_none: bool = False) -> HttpResponse:
    """After an action: htmx swaps in the next item's panel, a plain form post reloads.
    `holds_none`: the action ended the moderator's claim (a decision on the item they held)."""
    if not request.htmx:
        return redirect("review:next")
    return _render_panel(request, item_claim_next(moderator=request.user, holds_none=holds_none))


@require_GET
@moderator_required
def review_next(request: HtmxHttpRequest) -> HttpResponse:
    """The review page. A GET changes nothing: it shows the item this moderator holds, or a
    panel that asks for the next item by POST once the page has loaded (review_claim)."""
    held = item_get_held(moderator=request.user)
    if held is not None:
        return _render_panel(request, held)
    template = "review/partials/_claiming.html" if request.htmx else "review/next.html"
    return render(request, template, {"claiming": True})


@require_POST
@moderator_required
def review_claim(request: HtmxHttpRequest) -> HttpResponse:
    """Take the next item (or the one this moderator holds) and show it. A reload of the
    answer posts again, which gives back the same held item."""
    return _render_panel(request, item_claim_next(moderator=request.user))


@require_POST
@moderator_required
def review_decide(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    form = DecisionForm(request.POST, item=item)
    if not form.is_valid():
        messages.error(request, f"Not recorded: {form.error_text()}")
        return _retry(request, item)
    correction = form.cleaned_data["correction"]
    try:
        submitted = decision_submit(
            item=item,
            level=form.cleaned_data["level"],
            moderator=request.user,
            saw_label=form.cleaned_data["seen"],
            reason=form.cleaned_data["reason"],
            correction=correction,
        )
    except DecisionConflict as conflict:
        return _conflict(request, item, conflict, form.cleaned_data["level"])
    except DecisionError as error:
        messages.error(request, f"Not recorded: {error}.")
        return _retry(request, item) if correction else _next_item(request)
    if submitted.note:
        messages.info(request, submitted.note)
    if correction:
        messages.success(request, "Recorded as a correction of the newer label.")
        return _next_item(request)
    # A decision on the review path is on the item the moderator held, their only one.
    return _next_item(request, holds_none=True)


def _retry(request: HtmxHttpRequest, item: MediaItem) -> HttpResponse:
    """Back to the item after a refused form (a missing reason): the moderator still holds
    it, or, for a conflict's correction, sees the conflict's item again."""
    held = item_get_held(moderator=request.user)
    if not request.htmx:
        return redirect("review:next")
    return _render_panel(request, held if held == item else item_claim_next(moderator=request.user))


def _conflict(
    request: HtmxHttpRequest, item: MediaItem, conflict: DecisionConflict, level: int
) -> HttpResponse:
    """Nothing was written: show the newer label, who made it and when, and let the moderator
    keep it (next item) or confirm theirs as a deliberate correction, with a reason."""
    audit_record(
        action=Action.CONFLICT,
        actor=request.user,
        item=item,
        old=level_label(conflict.newer.level),
        new=f"{level_label(level)} (not recorded)",
        newer_label=conflict.newer.pk,
    )
    context = {
        **_panel_context(request, item),
        "newer": conflict.newer,
        "mine": level,
        "blocked_level": Label.BLOCKED,
    }
    template = "review/partials/_conflict.html" if request.htmx else "review/conflict.html"
    return render(request, template, context, status=409 if not request.htmx else 200)


@require_POST
@moderator_required
def review_skip(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    task = item_skip(item=item, moderator=request.user)
    _skip_remember(request, item, task)
    return _next_item(request)


@require_POST
@moderator_required
def review_undo(request: HtmxHttpRequest) -> HttpResponse:
    """Go back one item: to the one this moderator skipped, when a skip was the last thing
    they did, else reopen their previous decision. The item in front of them goes back."""
    current = item_get_by_uid(uid=request.POST.get("current", ""))
    skipped = _skip_last(request)
    if skipped is not None and skipped.item != current:
        return _skip_undo(request, current, skipped)
    previous = label_get_previous(moderator=request.user, exclude_item=current)
    if previous is None:
        messages.info(request, "Nothing to undo: you have not decided any other item yet.")
        return _next_item(request)
    try:
        with transaction.atomic():
            if current is not None:
                item_release(item=current, moderator=request.user)
            item_reopen(item=previous.item, moderator=request.user)
    except DecisionError as error:
        messages.error(request, f"Cannot reopen your previous item: {error}.")
        return _next_item(request)
    messages.info(request, "Reopened your previous item: a new decision supersedes the old one.")
    return _next_item(request)


def _skip_undo(
    request: HtmxHttpRequest, current: MediaItem | None, skipped: _Skipped
) -> HttpResponse:
    try:
        with transaction.atomic():
            if current is not None:
                item_release(item=current, moderator=request.user)
            item_skip_undo(item=skipped.item, moderator=request.user, task_id=skipped.task_id)
    except DecisionError as error:
        # That skip is spent either way: the next `u` goes further back.
        messages.error(request, f"Cannot go back to the item you skipped: {error}.")
        return _next_item(request)
    messages.info(request, "Back to the item you skipped.")
    return _next_item(request)


# The review page's skips, newest last, for `u` to walk back through: the session's, because
# a skip is a step in this moderator's way through the queue, not a record. (Skip rows keep
# no time; the decisions made since are what end a skip's turn.)
SKIPS_KEY = "review_skips"
SKIPS_KEPT = 20


@dataclass(frozen=True)
class _Skipped:
    item: MediaItem
    task_id: int | None


def _skip_remember(request: HttpRequest, item: MediaItem, task: ReviewTask | None) -> None:
    entry = {
        "item": str(item.uid),
        "task": None if task is None else task.pk,
        "at": timezone.now().isoformat(),
    }
    request.session[SKIPS_KEY] = [*request.session.get(SKIPS_KEY, []), entry][-SKIPS_KEPT:]


def _skip_last(request: HttpRequest) -> _Skipped | None:
    """Take the latest skip off the session, if no decision of this moderator came after it
    (then `u` is about that decision, as before, and every older skip is past too)."""
    skips = list(request.session.get(SKIPS_KEY, []))
    if not skips:
        return None
    entry = skips.pop()
    decided_since = Decision.objects.filter(
        moderator=request.user, created_at__gt=datetime.fromisoformat(entry["at"])
    ).exists()
    request.session[SKIPS_KEY] = [] if decided_since else skips
    item = None if decided_since else item_get_by_uid(uid=entry["item"])
    return None if item is None else _Skipped(item=item, task_id=entry["task"])


@require_GET
@moderator_required
def item_image(request: HttpRequest, uid: str) -> FileResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    if not item.has_image:
        raise Http404("this item has no image")
    response = FileResponse(item.image.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@moderator_required
def review_disagreements(request: HttpRequest) -> HttpResponse:
    form = DisagreementFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    rows = prediction_list_down_classed(
        true_level=filters.get("true_level"),
        predicted_level=filters.get("predicted_level"),
        model_version=filters.get("model_version") or None,
        model=filters.get("model") or None,
    )
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(request, "review/disagreements.html", {"form": form, "page": page})


@require_GET
@moderator_required
def item_history(request: HttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem.objects.select_related("review"), uid=uid)
    task = task_get_held(moderator=request.user, item=item)
    if task is not None and task.kind in BLIND:
        # Its history would show what the others decided: it opens once this one is decided.
        raise PermissionDenied("you are deciding this item blind: its history opens after")
    context = {
        "item": item,
        "summaries": [prediction_summary(p) for p in item_prediction_list(item=item)],
        "labels": item_label_list(item=item),
        "current_label": label_get_current(item=item, with_moderator=False),
        "audit_events": _audit_shown(request.user, item),
        # Gold is for admins' eyes: to a moderator a gold item looks like any other.
        "gold": getattr(item, "gold", None) if is_admin(request.user) else None,
        "can_mark_gold": is_admin(request.user),
    }
    return render(request, "review/history.html", context)


@require_GET
@moderator_required
def review_mine(request: HttpRequest) -> HttpResponse:
    """A moderator's own decisions and what became of each; their gold results, week by week;
    their hold, if one stands."""
    page = Paginator(decision_list_mine(moderator=request.user), 50).get_page(
        request.GET.get("page")
    )
    outcomes = decision_outcomes(list(page.object_list))
    rows = [(d, outcomes[d.pk]) for d in page.object_list]
    gold = gold_results(moderator=request.user)
    context = {
        "page": page,
        "rows": rows,
        "gold": gold[0] if gold else None,
        "gold_weeks": gold_weeks(moderator=request.user),
        "hold": hold_get_standing(moderator=request.user),
    }
    return render(request, "review/mine.html", context)


@require_POST
@admin_required
def item_gold(request: HttpRequest, uid: str) -> HttpResponse:
    """An admin marks an item as gold at its current label (the item page's button)."""
    item = get_object_or_404(MediaItem, uid=uid)
    if gold_mark(items=[item], admin=request.user):
        messages.success(request, "Marked as gold at its current label.")
    else:
        messages.error(request, "Not marked: gold needs a current label (and not gold already).")
    return redirect("review:history", uid=item.uid)


def _audit_shown(user, item: MediaItem) -> list:
    """The item's audit trail; to a moderator, without the rows that would tell a gold item or
    the reasons of second decisions still open on it (they are decided blind)."""
    events = list(audit_event_list_for_item(item=item))
    if is_admin(user):
        return events
    open_tasks = item.tasks.exclude(state=ReviewTask.State.DONE).exists()
    hidden = {Action.GOLD, Action.TASK} if open_tasks else {Action.GOLD}
    gold_tasks = set(item.tasks.filter(kind=ReviewTask.Kind.GOLD).values_list("pk", flat=True))
    return [
        e
        for e in events
        if e.action not in hidden and (e.detail or {}).get("task") not in gold_tasks
    ]
