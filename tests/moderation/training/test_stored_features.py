"""An MLP retrain reads the experts' stored outputs, for training and for judging."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest

from moderation.inference.bundles import bundle_for
from moderation.inference.models import ModelVersion
from moderation.inference.services import item_example, predictions_create
from moderation.media.models import MediaItem
from moderation.review.decisions import label_create
from moderation.training import features, runs, selectors, services
from moderation.training.models import Evaluation, TrainingRun
from rating_models.evaluation import evaluate_bundle
from rating_models.ratings import Rating

pytestmark = pytest.mark.django_db


def test_stored_outputs_are_what_the_experts_said(labelled):
    prompt_only = MediaItem.objects.create(prompt="nude woman on a bed", split="test")
    label_create(item=prompt_only, level=8, moderator=None, origin="test")
    predictions_create(item_ids=[prompt_only.pk])  # the tag experts abstain on it
    champion = ModelVersion.objects.get(status="champion")
    bundle = bundle_for(champion)
    items = list(selectors.test_items())
    assert prompt_only in items
    stored = features.stored_outputs(bundle, champion, items)
    said = bundle.predict([item_example(i) for i in items]).experts
    for name, out in said.items():
        np.testing.assert_array_equal(stored[name].abstain, out.abstain, name)
        np.testing.assert_array_equal(stored[name].ratings, out.ratings, name)
        np.testing.assert_allclose(stored[name].probs, out.probs, atol=1e-5)
        np.testing.assert_allclose(stored[name].features, out.features, rtol=1e-3, atol=1e-3)
    x, y = features.stored_inputs(bundle, champion, items)
    np.testing.assert_allclose(x, bundle.mlp.inputs(said), rtol=1e-3, atol=1e-3)
    assert y.tolist() == [Rating.parse(i.current_level).index for i in items]


def test_an_mlp_retrain_runs_no_expert_and_judges_as_predicting_would(labelled, settings):
    settings.GATE_MIN_EXPLICIT = 0
    run = runs.training_run_start()
    with mock.patch(
        "rating_models.experts.base.Expert.predict_guarded",
        side_effect=AssertionError("an expert ran"),
    ):
        run = services.training_run_execute(run_id=run.pk)
    assert run.state == TrainingRun.State.SUCCEEDED, run.reason
    examples = [
        dataclasses.replace(item_example(i), label=Rating.parse(i.current_level))
        for i in selectors.test_items()
    ]
    for version in (run.candidate, run.base_version):
        stored = Evaluation.objects.get(model_version=version).report
        predicted = evaluate_bundle(bundle_for(version), examples)
        for figure in ("n", "accuracy", "macro_f1", "dcm_rate", "severe_dcm_count"):
            assert stored[figure] == predicted[figure], (version, figure)


def test_test_items_without_stored_features_are_predicted_first(labelled, settings):
    champion = ModelVersion.objects.get(status="champion")
    # Labelled after the champion predicted the others (predictions are never deleted).
    test_item = MediaItem.objects.create(prompt="a cat on a sofa", split="test", source="t")
    label_create(item=test_item, level=1, moderator=None, origin="test")
    run = services.training_run_execute(run_id=runs.training_run_start().pk)
    assert run.state == TrainingRun.State.SUCCEEDED, run.reason
    assert test_item.predictions.filter(model_version=champion).exists()
    assert "predicting 1 items that have no stored features yet" in run.log
