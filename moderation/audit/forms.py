"""The audit trail's filters: an item, a person, an action, a range of days."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from moderation.audit.models import AuditEvent


class DateInput(forms.DateInput):
    input_type = "date"


class AuditFilterForm(forms.Form):
    item = forms.UUIDField(
        label="Item uid",
        required=False,
        error_messages={"invalid": "Enter an item's uid, such as 3f2b8c1e-…-9a0d (36 characters)."},
        widget=forms.TextInput(attrs={"placeholder": "any item", "size": 36}),
    )
    actor = forms.ChoiceField(label="Who", required=False)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "any"), *AuditEvent.Action.choices]
    )
    since = forms.DateField(label="From", required=False, widget=DateInput)
    until = forms.DateField(label="To", required=False, widget=DateInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Everyone with an account: a moderation team is small, and a choice list cannot be
        # mistyped. Rows written by the system have no actor and are never filtered by one.
        usernames = get_user_model().objects.order_by("username").values_list("username", flat=True)
        self.fields["actor"].choices = [("", "anyone"), *((u, u) for u in usernames)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The “to” day comes before the “from” day.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of `audit_event_list`, for a valid form: whole days in the
        current time zone, the "to" day included."""
        data = self.cleaned_data
        return {
            "item_uid": data.get("item"),
            "actor": data.get("actor") or None,
            "action": data.get("action") or None,
            "since": _start_of(data["since"]) if data.get("since") else None,
            "until": _start_of_next(data["until"]) if data.get("until") else None,
        }


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _start_of_next(day: date) -> datetime | None:
    # The last day a date can hold has no next day: nothing is later, so no upper bound.
    return None if day == date.max else _start_of(day + timedelta(days=1))
