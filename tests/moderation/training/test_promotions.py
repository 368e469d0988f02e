"""Promotions moderators never notice: the incoming version rates the open queue before the
switch, the switch and the new priorities land together, the queue shows the former
champion's suggestion (marked) until the new one has rated an item, and no process pays for
a load in a request."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from moderation.inference import bundles, services
from moderation.inference.models import ModelVersion, Prediction
from moderation.inference.selectors import prediction_get_shown
from moderation.media.models import MediaItem
from moderation.review.models import ReviewState
from moderation.training import registry, warm
from moderation.training.models import Promotion
from rating_models.examples import Example
from tests.moderation.training.conftest import run_promotions

from .test_views import PASSED, finished_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidate(champion, bundle_dir):
    version = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    finished_run(champion, candidate=version, gate=PASSED)
    return version


def open_items(prompts: list[str], *, rated_by: ModelVersion | None = None) -> list[MediaItem]:
    items = []
    for prompt in prompts:
        item = MediaItem.objects.create(prompt=prompt, source="t", split="train")
        ReviewState.objects.create(item=item)
        items.append(item)
    if rated_by is not None:
        services.predictions_create(item_ids=[i.pk for i in items], version=rated_by)
    return items


def test_a_promotion_rates_the_open_queue_riskiest_first_then_switches(
    champion, candidate, settings
):
    settings.PROMOTION_RATE_ITEMS = 2
    items = open_items(["a cat", "nude woman on a bed", "a dog", "topless"], rated_by=champion)
    done = open_items(["a tree"])[0]
    ReviewState.objects.filter(item=done).update(state=ReviewState.State.DONE, priority=9)
    for item, priority in zip(items, (0, 5, 0, 4), strict=True):  # risk is 3 at most
        ReviewState.objects.filter(item=item).update(priority=priority)
    riskiest = [items[1].pk, items[3].pk]

    promotion = registry.promotion_start(version=candidate, queue=False)
    assert promotion.state == "queued"
    promotion = registry.promotion_execute(promotion.pk)

    assert (promotion.state, promotion.rated, promotion.to_rate) == ("done", 2, 2)
    assert promotion.previous == champion
    rated = set(
        Prediction.objects.filter(model_version=candidate).values_list("item_id", flat=True)
    )
    assert rated == set(riskiest)
    # The switch recomputed the priorities of the items the new champion had rated.
    assert all(s.priority <= 3 for s in ReviewState.objects.filter(item_id__in=riskiest))
    candidate.refresh_from_db()
    champion.refresh_from_db()
    assert (candidate.status, champion.status) == ("champion", "former")
    # An item it has not rated yet shows the former champion's suggestion, marked so.
    waiting = next(i for i in items if i.pk not in rated)
    shown = prediction_get_shown(item_id=waiting.pk)
    assert shown.model_version == champion and shown.from_former_champion
    shown = prediction_get_shown(item_id=riskiest[0])
    assert shown.model_version == candidate and not shown.from_former_champion


def test_a_version_being_promoted_does_not_set_priorities_before_the_switch(champion, candidate):
    (item,) = open_items(["nude woman on a bed"])
    ReviewState.objects.filter(item=item).update(priority=-1)
    services.predictions_create(item_ids=[item.pk], version=candidate)
    assert ReviewState.objects.get(item=item).priority == -1
    services.predictions_create(item_ids=[item.pk], version=champion)
    assert ReviewState.objects.get(item=item).priority >= 0


def test_the_review_page_marks_the_former_champions_suggestion(champion, candidate, alice, client):
    (item,) = open_items(["a cat on a sofa"], rated_by=champion)
    registry.promotion_run_now(version=candidate)
    client.force_login(alice)
    # The candidate rated the queue before the switch: make an item it has not rated.
    (late,) = open_items(["a dog in the park"], rated_by=None)
    services.predictions_create(item_ids=[late.pk], version=champion)  # the former champion
    ReviewState.objects.filter(item=item).update(state=ReviewState.State.DONE)
    page = client.post(reverse("review:claim")).content.decode()
    assert "Former champion's prediction" in page
    assert "has not rated this item yet" in page
    assert "Prediction pending" not in page


def test_a_message_delivered_twice_runs_the_promotion_once(champion, candidate):
    promotion = registry.promotion_start(version=candidate, queue=False)
    assert registry.promotion_execute(promotion.pk).state == "done"
    assert registry.promotion_execute(promotion.pk).state == "done"
    assert Promotion.objects.get().state == "done"


def test_one_promotion_at_a_time(champion, candidate, bundle_dir):
    other = ModelVersion.objects.create(version="cand-2", path=str(bundle_dir))
    finished_run(champion, candidate=other, gate=PASSED)
    registry.promotion_start(version=candidate, queue=False)
    with pytest.raises(registry.PromotionBusy, match="under way"):
        registry.promotion_start(version=other, queue=False)
    with pytest.raises(registry.PromotionRefused, match="being promoted"):
        registry.model_version_retire(version=candidate)


def test_a_promotion_whose_worker_died_stops_blocking_the_next(champion, candidate, settings):
    stale = registry.promotion_start(version=candidate, queue=False)
    Promotion.objects.filter(pk=stale.pk).update(
        state="rating", heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    registry.promotion_start(version=candidate, queue=False)
    stale.refresh_from_db()
    assert stale.state == "failed" and "worker stopped" in stale.error
    champion.refresh_from_db()
    assert champion.status == "champion"


def test_a_candidate_retired_during_its_promotion_is_refused_at_the_switch(champion, candidate):
    promotion = registry.promotion_start(version=candidate, queue=False)
    ModelVersion.objects.filter(pk=candidate.pk).update(status="retired")
    promotion = registry.promotion_execute(promotion.pk)
    assert promotion.state == "failed" and "refused at the switch" in promotion.error
    champion.refresh_from_db()
    assert champion.status == "champion"


def test_the_promotion_panel_polls_while_under_way_and_reloads_when_done(
    carol_client, champion, candidate
):
    carol_client.post(reverse("training:promote", args=[candidate.pk]))
    url = reverse("training:promotion")
    panel = carol_client.get(url, {"polling": 1}, headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in panel.text and "HX-Refresh" not in panel.headers
    run_promotions()
    panel = carol_client.get(url, {"polling": 1}, headers={"HX-Request": "true"})
    assert panel.headers["HX-Refresh"] == "true"
    assert "became the champion" in panel.text and "every 1s" not in panel.text


def test_web_processes_load_the_incoming_bundle_while_the_queue_is_rated(champion, candidate):
    bundles._loaded.clear()
    assert warm.bundles_warm() == [champion.version]
    promotion = registry.promotion_start(version=candidate, queue=False)
    assert warm.bundles_warm() == []  # queued: no worker has taken it yet
    Promotion.objects.filter(pk=promotion.pk).update(state="rating")
    assert warm.bundles_warm() == [candidate.version]
    assert bundles.bundle_loaded(candidate) is not None
    assert bundles.bundle_loaded(champion) is not None  # both kept until the switch


def test_a_request_never_waits_for_a_load_after_a_switch(champion, candidate):
    bundles._loaded.clear()
    bundles.bundle_for(champion)
    ModelVersion.objects.filter(pk=champion.pk).update(status="former")
    ModelVersion.objects.filter(pk=candidate.pk).update(status="champion")

    version, prediction = services.rate_now(Example("g", "a cat on a sofa"))

    assert version == champion  # the held bundle answered, and the answer says whose it is
    assert prediction.suggested.shape == (1,)
    for thread in threading.enumerate():
        if thread.name == f"load-{candidate.version}":
            thread.join(timeout=60)
    assert bundles.bundle_loaded(candidate) is not None
    version, _ = services.rate_now(Example("g", "a cat on a sofa"))
    assert version.pk == candidate.pk
