"""The model audit's forms: starting a session, a decision on an audited item, and which
audits the figures count."""

from __future__ import annotations

from django import forms
from django.conf import settings

from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import MAX_SIZE
from moderation.review.forms import DecisionForm


class AuditStartForm(forms.Form):
    mode = forms.ChoiceField(choices=AuditSession.Mode.choices, initial=AuditSession.Mode.TRIGGERED)
    size = forms.IntegerField(min_value=1, max_value=MAX_SIZE, initial=20, label="Items")
    days = forms.IntegerField(
        min_value=1, max_value=3650, initial=7, label="Received in the last (days)"
    )
    margin = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        label="Near-miss margin",
        help_text="Left empty: MODEL_AUDIT_MARGIN.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["margin"].widget.attrs.update(
            {"step": "0.01", "placeholder": f"{settings.MODEL_AUDIT_MARGIN:g}"}
        )


class AuditDecisionForm(DecisionForm):
    """The review page's decision form: the rating, the reason (required for Blocked) and the
    label the page showed the item with, which a label written since makes a conflict. An audit
    is never a correction."""

    correction = None


class AuditFiguresForm(forms.Form):
    """Which audits to count: one session, one mode's sessions, or all (both empty)."""

    session = forms.ModelChoiceField(queryset=AuditSession.objects.all(), required=False)
    mode = forms.ChoiceField(choices=[("", "all"), *AuditSession.Mode.choices], required=False)
