"""`auto_publish` in the API's answers: whether the champion's bounded rule publishes the
rating without a moderator, with the bound it holds to; null for a version without one."""

from __future__ import annotations

import pytest

from moderation.inference import bundles
from moderation.inference.models import Prediction
from moderation.inference.services import predictions_create
from moderation.inference.versions import model_version_register
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle
from rating_models.examples import Example
from tests.rating_models.bundles import toy_examples

RATE = "/api/v1/rate/"


@pytest.fixture(autouse=True)
def no_bundle_held():
    """Each test's champion rates, not a bundle an earlier test left loaded (a process answers
    with the bundle it holds while a new champion loads)."""
    bundles._loaded.clear()
    yield
    bundles._loaded.clear()


@pytest.fixture
def bounded(db, bounded_bundle_dir):
    return model_version_register(path=bounded_bundle_dir, promote=True)


def expected(bounded_bundle_dir, examples: list[Example]) -> list[bool]:
    prediction = Bundle.load(bounded_bundle_dir).predict(examples)
    return prediction.auto_publish.tolist()


def test_a_rated_prompt_says_whether_it_may_be_published_unreviewed_and_within_what(
    api, bounded, bounded_bundle_dir
):
    examples = [Example(id=e.id, prompt=e.prompt) for e in toy_examples(1, "t")]
    wanted = expected(bounded_bundle_dir, examples)
    assert any(wanted) and not all(wanted)  # the toy rule publishes some, not all
    for example, publish in zip(examples, wanted, strict=True):
        body = api.post(RATE, {"prompt": example.prompt}, format="json").json()
        assert body["auto_publish"] == {
            "publish": publish,
            "bound": {"dcm_rate": 0.1, "confidence": 0.9},
        }


def test_stored_predictions_keep_what_the_rule_said(api, acme, bounded, bounded_bundle_dir):
    examples = toy_examples(1, "t")
    items = [
        MediaItem.objects.create(prompt=e.prompt, tags=[list(t) for t in e.tags], client=acme[0])
        for e in examples
    ]
    predictions_create(item_ids=[i.pk for i in items])
    stored = [Prediction.objects.get(item=i).auto_publish for i in items]
    assert stored == expected(bounded_bundle_dir, examples)
    body = api.get(f"/api/v1/items/{items[0].uid}/").json()
    assert body["predictions"][0]["auto_publish"]["publish"] is stored[0]


def test_a_version_without_a_publishing_rule_answers_null(api, champion):
    body = api.post(RATE, {"prompt": "a cat"}, format="json").json()
    assert body["auto_publish"] is None
