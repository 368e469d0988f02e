"""Grid review's page and its posts: claim a page, decide a selection, give the page back.

Plain forms that post and redirect (the page is reloaded with the items still held); the
release is also sent by the page's script as a beacon when the page is left.
"""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from moderation.review.decorators import moderator_required
from moderation.review.forms import CONTROL, RATING_CHOICES
from moderation.review.grid import (
    CONFIRM,
    GridFilters,
    grid_claim,
    grid_decide,
    grid_items_held,
    grid_release,
)
from moderation.review.queue import level_label
from moderation.review.views import RATING_BUTTONS
from rating_models.ratings import RATINGS

MAX_TAGS = 20
MAX_SELECTED = 500


class GridFilterForm(forms.Form):
    suggested = forms.TypedChoiceField(
        label="Suggested", choices=RATING_CHOICES, coerce=int, empty_value=None, required=False
    )
    source = forms.CharField(label="Source", required=False, max_length=100)
    tags_include = forms.CharField(
        label="With all tags", required=False, max_length=1000, help_text="comma separated"
    )
    tags_exclude = forms.CharField(
        label="Without tags", required=False, max_length=1000, help_text="comma separated"
    )

    def _tags(self, name: str) -> tuple[str, ...]:
        text = self.cleaned_data[name]
        if CONTROL.search(text):
            raise forms.ValidationError("the tags have control characters")
        tags = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"at most {MAX_TAGS} tags")
        return tags

    def clean_tags_include(self) -> tuple[str, ...]:
        return self._tags("tags_include")

    def clean_tags_exclude(self) -> tuple[str, ...]:
        return self._tags("tags_exclude")

    def clean_source(self) -> str:
        if CONTROL.search(self.cleaned_data["source"]):
            raise forms.ValidationError("the source has control characters")
        return self.cleaned_data["source"]

    def filters(self) -> GridFilters:
        return GridFilters(**self.cleaned_data)


class GridDecideForm(forms.Form):
    """A bulk decision: the selected items' uids and "confirm" or one rating level for all."""

    action = forms.ChoiceField(
        choices=[(CONFIRM, "confirm suggested"), *((str(r.level), r.label) for r in RATINGS)]
    )
    back = forms.CharField(required=False, max_length=2000)

    def __init__(self, data: QueryDict, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.uids = data.getlist("uid")

    def clean(self) -> dict:
        if not self.uids:
            raise forms.ValidationError("select at least one item")
        if len(self.uids) > MAX_SELECTED:
            raise forms.ValidationError(f"at most {MAX_SELECTED} items at once")
        try:
            uids = (str(uuid.UUID(u)) for u in self.uids)
            self.cleaned_data["uids"] = list(dict.fromkeys(uids))  # once each, in page order
        except ValueError:
            raise forms.ValidationError("an item id is not a uuid") from None
        return self.cleaned_data


def _errors(form: forms.Form) -> str:
    return "; ".join(
        f"{'' if name == '__all__' else name.replace('_', ' ') + ': '}{' '.join(errors)}"
        for name, errors in form.errors.items()
    )


def _page(request: HttpRequest, form: GridFilterForm, *, status: int = 200) -> HttpResponse:
    cards = grid_items_held(moderator=request.user)
    context = {
        "form": form,
        "cards": cards,
        "warned": sum(1 for c in cards if c.warnings),
        "rating_buttons": RATING_BUTTONS,
        "page_size": settings.GRID_PAGE_SIZE,
        "query": form.data.urlencode() if form.is_bound else "",
    }
    return render(request, "review/grid.html", context, status=status)


def _back(query: str) -> HttpResponse:
    """Back to the grid page with the filters it was showing (dropped if they do not parse)."""
    form = GridFilterForm(QueryDict(query))
    url = reverse("review:grid")
    return redirect(f"{url}?{form.data.urlencode()}" if query and form.is_valid() else url)


@require_GET
@moderator_required
def grid_page(request: HttpRequest) -> HttpResponse:
    """The filters and the items of this moderator's grid page. A GET changes nothing."""
    form = GridFilterForm(request.GET) if request.GET else GridFilterForm()
    if form.is_bound and not form.is_valid():
        messages.error(request, f"Filters not applied: {_errors(form)}")
        return _page(request, form, status=400)
    return _page(request, form)


@require_POST
@moderator_required
def grid_claim_view(request: HttpRequest) -> HttpResponse:
    """Give back the current grid page and claim a new one with these filters."""
    form = GridFilterForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"No page loaded: {_errors(form)}")
        return _page(request, form, status=400)
    items = grid_claim(moderator=request.user, filters=form.filters())
    if not items:
        messages.info(request, "No open item matches these filters.")
    query = request.POST.copy()
    query.pop("csrfmiddlewaretoken", None)
    return _back(query.urlencode())


@require_POST
@moderator_required
def grid_decide_view(request: HttpRequest) -> HttpResponse:
    """Confirm the selection's suggestions, or set one rating for all of it."""
    form = GridDecideForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing recorded: {_errors(form)}")
        return _page(request, GridFilterForm(), status=400)
    action = form.cleaned_data["action"]
    outcome = grid_decide(
        moderator=request.user,
        uids=form.cleaned_data["uids"],
        action=action if action == CONFIRM else int(action),
    )
    what = "as suggested" if action == CONFIRM else f"as {level_label(int(action))}"
    if outcome.decided:
        messages.success(request, f"Recorded {outcome.decided} decisions {what}.")
    if outcome.pending:
        messages.info(
            request,
            f"{outcome.pending} recorded, waiting for a second moderator "
            "(a big downgrade, or your hold).",
        )
    if outcome.skipped:
        reasons = sorted({why for _, why in outcome.skipped})
        messages.warning(request, f"{len(outcome.skipped)} left out: {'; '.join(reasons)}.")
    return _back(form.cleaned_data["back"])


@require_POST
@moderator_required
def grid_release_view(request: HttpRequest) -> HttpResponse:
    """Give back the undecided items of the page: the page's button, or its beacon on leaving
    (which is answered 204, as nobody reads it)."""
    released = grid_release(moderator=request.user)
    if request.POST.get("beacon"):
        return HttpResponse(status=204)
    messages.info(request, f"Gave back {released} items to the queue.")
    return redirect("review:grid")
