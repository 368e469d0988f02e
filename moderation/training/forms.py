from __future__ import annotations

from decimal import Decimal

from django import forms

from moderation.training.models import TrainingRun

MODES = [
    (TrainingRun.Mode.MLP, "MLP only on stored features (fast)"),
    (TrainingRun.Mode.FULL, "experts and MLP (full, for GPU workers)"),
]


class TrainingRunStartForm(forms.Form):
    mode = forms.ChoiceField(choices=MODES, initial=TrainingRun.Mode.MLP, widget=forms.RadioSelect)


class RecalibrateForm(forms.Form):
    """The target DCM rate of the champion's bounded suggestion, in percent."""

    alpha_percent = forms.DecimalField(
        label="Target DCM rate (α, %)",
        min_value=Decimal("0.1"),
        max_value=Decimal("50"),
        decimal_places=2,
    )
