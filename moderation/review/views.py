"""The moderator's pages. Each URL answers with the whole page, or for htmx the panel to swap."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from moderation.media.models import MediaItem
from moderation.review.decorators import moderator_required
from moderation.review.forms import DisagreementFilterForm
from moderation.review.models import Label
from moderation.review.selectors import (
    QUEUE_SIZE_SHOWN,
    item_get_by_uid,
    item_label_list,
    item_prediction_list,
    label_get_current,
    label_get_previous,
    prediction_get_champion,
    prediction_list_down_classed,
    review_queue_size,
)
from moderation.review.services import (
    LabelError,
    item_claim_next,
    item_release,
    item_reopen,
    item_skip,
    label_create,
)
from moderation.review.summaries import prediction_summary
from rating_models.ratings import RATINGS

# The rating buttons and their hotkeys: 1 is PG ... 5 is XXX.
RATING_BUTTONS = [
    {"level": r.level, "label": r.label, "key": str(i + 1)} for i, r in enumerate(RATINGS)
]


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _render_panel(request: HtmxHttpRequest, item: MediaItem | None) -> HttpResponse:
    prediction = None if item is None else prediction_get_champion(item=item)
    context = {
        "item": item,
        "summary": None if prediction is None else prediction_summary(prediction),
        "current_label": None if item is None else label_get_current(item=item),
        "queue_size": review_queue_size(moderator=request.user),
        "queue_size_shown": QUEUE_SIZE_SHOWN,
        "rating_buttons": RATING_BUTTONS,
        "blocked_level": Label.BLOCKED,
    }
    template = "review/partials/_panel.html" if request.htmx else "review/next.html"
    return render(request, template, context)


def _next_item(request: HtmxHttpRequest) -> HttpResponse:
    """After an action: htmx swaps in the next item's panel, a plain form post reloads."""
    if not request.htmx:
        return redirect("review:next")
    return _render_panel(request, item_claim_next(moderator=request.user))


@require_GET
@moderator_required
def review_next(request: HtmxHttpRequest) -> HttpResponse:
    return _render_panel(request, item_claim_next(moderator=request.user))


@require_POST
@moderator_required
def review_decide(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    try:
        label_create(item=item, level=request.POST.get("level", ""), moderator=request.user)
    except LabelError as error:
        messages.error(request, f"Not recorded: {error}.")
    return _next_item(request)


@require_POST
@moderator_required
def review_skip(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item_skip(item=get_object_or_404(MediaItem, uid=uid), moderator=request.user)
    return _next_item(request)


@require_POST
@moderator_required
def review_undo(request: HtmxHttpRequest) -> HttpResponse:
    """Reopen this moderator's previous decision; the item in front of them goes back."""
    current = item_get_by_uid(uid=request.POST.get("current", ""))
    previous = label_get_previous(moderator=request.user, exclude_item=current)
    if previous is None:
        messages.info(request, "Nothing to undo: you have not decided any other item yet.")
        return _next_item(request)
    if current is not None:
        item_release(item=current, moderator=request.user)
    item_reopen(item=previous.item, moderator=request.user)
    messages.info(request, "Reopened your previous item: a new decision supersedes the old one.")
    return _next_item(request)


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
    context = {
        "item": item,
        "summaries": [prediction_summary(p) for p in item_prediction_list(item=item)],
        "labels": item_label_list(item=item),
    }
    return render(request, "review/history.html", context)
