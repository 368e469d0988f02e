"""The review page's decision form and the disagreement list's filter form."""

from __future__ import annotations

import re

from django import forms

from moderation.review.models import Label
from moderation.review.selectors import model_version_list
from rating_models.ratings import RATINGS, parse_label

# Control characters but tab, newline and carriage return (a reason goes on pages and in CSV).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

RATING_CHOICES = [("", "any"), *((str(r.level), r.label) for r in RATINGS)]
MODEL_CHOICES = [("", "voter or MLP"), ("voter", "voter"), ("mlp", "MLP")]


class DisagreementFilterForm(forms.Form):
    true_level = forms.TypedChoiceField(
        label="True label", choices=RATING_CHOICES, coerce=int, empty_value=None, required=False
    )
    predicted_level = forms.TypedChoiceField(
        label="Predicted", choices=RATING_CHOICES, coerce=int, empty_value=None, required=False
    )
    model = forms.ChoiceField(label="Model", choices=MODEL_CHOICES, required=False)
    model_version = forms.ChoiceField(label="Model version", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        versions = model_version_list().values_list("version", flat=True)
        self.fields["model_version"].choices = [("", "any"), *((v, v) for v in versions)]


class DecisionForm(forms.Form):
    """A decision posted from the review page: the rating, the label the moderator saw (its id,
    empty for none), a reason (required for Blocked and for a correction) and whether it is a
    correction confirmed over a newer label."""

    level = forms.IntegerField()
    seen = forms.CharField(required=False, max_length=20)
    reason = forms.CharField(required=False, max_length=2000)
    correction = forms.BooleanField(required=False)

    def __init__(self, *args, item, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.item = item

    def clean_level(self) -> int:
        try:
            return parse_label(self.cleaned_data["level"]).level
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_seen(self) -> Label | None:
        seen = self.cleaned_data["seen"].strip()
        if not seen:
            return None
        if not seen.isdigit():
            raise forms.ValidationError("the label you saw is not a label id")
        label = Label.objects.filter(pk=int(seen), item=self.item).first()
        if label is None:
            raise forms.ValidationError("the label you saw is not this item's")
        return label

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"]
        if CONTROL.search(reason):
            raise forms.ValidationError("the reason has control characters")
        return reason

    def error_text(self) -> str:
        return "; ".join(
            f"{'' if name == '__all__' else name + ': '}{' '.join(errors)}"
            for name, errors in self.errors.items()
        )
