"""The worker explains each rating as it predicts it, and stores the explanation with it."""

from __future__ import annotations

import pytest

from moderation.inference.models import Prediction
from moderation.inference.tasks import predict_items
from moderation.review.models import ReviewState
from tests.moderation.inference.conftest import make_items

pytestmark = pytest.mark.django_db

NUDE = (("nude", 0.9),)


def stored(item) -> dict:
    return Prediction.objects.get(item=item).explanation


def test_the_worker_stores_each_items_explanation_with_its_prediction(champion, settings):
    settings.EXPLANATION_BUDGET = float("inf")
    explicit, safe = make_items(["nude woman on a bed"], tags=NUDE) + make_items(["a cat"])

    assert predict_items([explicit.pk, safe.pk]) == 2

    explanation = stored(explicit)
    assert explanation["partial"] is False
    rules = explanation["experts"]["tag_rules"]
    assert rules["method"] == "rules"
    assert rules["top"][0]["tag"] == "nude"
    lstm = explanation["experts"]["lstm"]  # the bundle's word LSTM, explained by occlusion
    assert lstm["method"] == "occlusion"
    for entry in lstm["top"]:
        assert [explicit.prompt[a:b] for a, b in entry["spans"]] == [entry["word"]]
    assert stored(safe)["experts"]["tag_rules"]["top"] == []  # nothing raised it above PG


def test_with_no_budget_only_the_cheap_explanations_are_stored(champion, settings):
    settings.EXPLANATION_BUDGET = 0
    (item,) = make_items(["nude woman on a bed"], tags=NUDE)

    predict_items([item.pk])

    explanation = stored(item)
    assert explanation["partial"] is True
    assert sorted(explanation["skipped"]) == ["lstm", "lstm_tags"]
    assert set(explanation["experts"]) == {"tag_rules"}


def test_items_no_moderator_will_see_get_only_the_cheap_explanations(champion, settings):
    settings.EXPLANATION_BUDGET = float("inf")
    decided, queued = make_items(["nude woman on a bed", "naked man explicit"], tags=NUDE)
    ReviewState.objects.filter(item=decided).update(state=ReviewState.State.DONE)

    predict_items([decided.pk, queued.pk])

    assert stored(decided)["partial"] is True
    assert stored(queued)["partial"] is False
