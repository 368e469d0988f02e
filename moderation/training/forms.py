from __future__ import annotations

from django import forms

from moderation.training.models import TrainingRun

MODES = [
    (TrainingRun.Mode.MLP, "MLP only on stored features (fast)"),
    (TrainingRun.Mode.FULL, "experts and MLP (full, for GPU workers)"),
]


class TrainingRunStartForm(forms.Form):
    mode = forms.ChoiceField(choices=MODES, initial=TrainingRun.Mode.MLP, widget=forms.RadioSelect)
