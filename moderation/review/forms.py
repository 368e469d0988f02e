"""The filter form of the disagreement list."""

from __future__ import annotations

from django import forms

from moderation.review.selectors import model_version_list
from rating_models.ratings import RATINGS

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
