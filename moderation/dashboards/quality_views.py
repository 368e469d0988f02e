"""The label-quality section's pages and actions: the items behind each number, the agreement
CSV, and an admin's two answers to a hold (clear it; send the held moderator's recent
decisions to a second look)."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from moderation.dashboards.decorators import admin_required
from moderation.dashboards.quality import DONE, OPEN, SCORED, agreement_report, task_list
from moderation.review.gold import GoldError, hold_clear, hold_send_to_second_look
from moderation.review.models import ModeratorHold, ReviewTask
from moderation.spreadsheet import csv_cell

PER_PAGE = 50
AGREEMENT_HEADER = [
    "pair",
    "n",
    "exact",
    "exact_low",
    "exact_high",
    "kappa",
    "kappa_low",
    "kappa_high",
    "alpha",
    "alpha_low",
    "alpha_high",
]


class DateInput(forms.DateInput):
    input_type = "date"


class _Users(forms.ModelChoiceField):
    def label_from_instance(self, user: AbstractBaseUser) -> str:
        return user.get_username()


class QualityItemsForm(forms.Form):
    kind = forms.MultipleChoiceField(
        required=False, choices=ReviewTask.Kind.choices, widget=forms.CheckboxSelectMultiple
    )
    outcome = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    state = forms.ChoiceField(
        required=False, choices=[("", "any"), (OPEN, "open or claimed"), (DONE, "done")]
    )
    moderator = _Users(
        queryset=get_user_model().objects.order_by("username"),
        to_field_name="username",
        required=False,
        empty_label="anyone",
    )
    week = forms.DateField(required=False, widget=DateInput, label="Week closed (Monday)")
    pair = forms.CharField(
        required=False,
        max_length=310,
        label="Double-review pair",
        widget=forms.TextInput(attrs={"placeholder": "alice,bob"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The outcomes recorded so far, and gold's (the page links a moderator's count of
        # zero misses too): a mistyped one is refused rather than listing nothing.
        recorded = ReviewTask.objects.exclude(outcome="").values_list("outcome", flat=True)
        outcomes = sorted({*recorded.distinct().order_by(), *SCORED})
        self.fields["outcome"].choices = [(o, o) for o in outcomes]

    def clean_week(self) -> Any:
        week = self.cleaned_data.get("week")
        if week is not None and week.weekday() != 0:
            raise forms.ValidationError("A week starts on a Monday: give that day.")
        return week

    def clean_pair(self) -> Any:
        text = self.cleaned_data.get("pair")
        if not text:
            return None
        names = [name.strip() for name in text.split(",")]
        if len(names) != 2 or not all(names):
            raise forms.ValidationError("Give two usernames separated by a comma: alice,bob.")
        users = {u.get_username(): u for u in get_user_model().objects.filter(username__in=names)}
        if set(names) - set(users):
            raise forms.ValidationError("No moderator of that name.")
        return users[names[0]], users[names[1]]

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of `task_list`, for a valid form."""
        data = self.cleaned_data
        return {
            "kinds": data.get("kind") or (),
            "outcomes": data.get("outcome") or (),
            "state": data.get("state") or None,
            "moderator": data.get("moderator"),
            "week": data.get("week"),
            "pair": data.get("pair"),
        }


@require_GET
@admin_required
def quality_items(request: HttpRequest) -> HttpResponse:
    form = QualityItemsForm(request.GET)
    if not form.is_valid():
        # A list under filters the admin did not ask for would mislead: the errors alone.
        return render(request, "dashboards/quality_items.html", {"form": form}, status=400)
    page = Paginator(task_list(**form.filters()), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboards/quality_items.html", {"form": form, "page": page})


@require_GET
@admin_required
def quality_agreement_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="agreement.csv"'
    writer = csv.writer(response)
    writer.writerow(AGREEMENT_HEADER)
    for row in agreement_report():
        figures = row.agreement
        estimates = (figures.exact, figures.kappa, figures.alpha)
        cells = [row.pair, figures.n, *(x for e in estimates for x in (e.value, e.low, e.high))]
        writer.writerow([csv_cell(c) for c in cells])
    return response


def _back() -> HttpResponse:
    return redirect(reverse("dashboards:health") + "#held-moderators")


class HoldClearForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class SendBackForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=365, required=False)


@require_POST
@admin_required
def quality_hold_clear(request: HttpRequest, hold_id: int) -> HttpResponse:
    hold = get_object_or_404(ModeratorHold.objects.select_related("moderator"), pk=hold_id)
    form = HoldClearForm(request.POST)
    name = hold.moderator.get_username()
    if not form.is_valid():
        messages.error(request, "The reason is too long: 500 characters at most.")
        return _back()
    try:
        hold_clear(hold=hold, admin=request.user, reason=form.cleaned_data["reason"])
    except GoldError as error:
        messages.info(request, f"{name}: {error}.")
        return _back()
    messages.success(request, f"The hold on {name} is cleared: their decisions are final again.")
    return _back()


@require_POST
@admin_required
def quality_hold_send_back(request: HttpRequest, hold_id: int) -> HttpResponse:
    hold = get_object_or_404(ModeratorHold.objects.select_related("moderator"), pk=hold_id)
    form = SendBackForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the number of days as a whole number from 1 to 365.")
        return _back()
    days = form.cleaned_data["days"] or 7
    opened, left = hold_send_to_second_look(hold=hold, days=days, actor=request.user)
    name = hold.moderator.get_username()
    text = (
        f"Sent {opened} of {name}'s decision{'s' if opened != 1 else ''} from the {days} "
        f"day{'s' if days != 1 else ''} before the hold to a second look."
    )
    if left:
        text += f" {left} had one open already or were relabelled since."
    messages.success(request, text)
    return _back()
