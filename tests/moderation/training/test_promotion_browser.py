"""An admin promotes a candidate while a moderator reviews, both in Debian's Chromium: every
item the moderator opens has a suggestion, before, during and after the switch.

A real worker on Redis runs the promotion (load, rate the queue, switch) and the predictions
queued after it. It rates only the ten riskiest open items before the switch
(PROMOTION_RATE_ITEMS), so the rest are rated after it, and meanwhile show the former
champion's suggestion, marked so.

As in the other browser tests, DJANGO_ALLOW_ASYNC_UNSAFE lets the test use the ORM beside
Playwright's event loop, and the database is read only outside the `sync_playwright()` block.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.inference.models import ModelVersion, Prediction
from moderation.inference.services import predictions_create
from moderation.media.models import MediaItem
from moderation.review.models import Label, ReviewState
from moderation.training.models import Promotion
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.screenshots import screenshot_path
from tests.moderation.worker import broker, empty_redis, worker
from tests.services import redis_url

from .test_views import PASSED, finished_run

REDIS = redis_url(13)
ITEMS = 80
AFTER_THE_SWITCH = 4  # items reviewed once the promotion is done


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def redis_url():
    return empty_redis(REDIS)


def queued_items(champion: ModelVersion) -> list[MediaItem]:
    prompts = ["a cat on a sofa", "nude woman on a bed", "a dog in the park", "lingerie model"]
    items = []
    for n in range(ITEMS):
        item = MediaItem.objects.create(prompt=f"{prompts[n % 4]} {n}", source="t", split="train")
        ReviewState.objects.create(item=item)
        items.append(item)
    predictions_create(item_ids=[i.pk for i in items], version=champion)
    return items


def shown(page) -> dict[str, str]:
    """What the moderator sees of the item in front of them."""
    panel = page.locator("#review-panel")
    expect(panel).to_have_attribute("data-item", re.compile(".+"))
    card = panel.locator(".prediction")
    return {
        "item": panel.get_attribute("data-item"),
        "card": card.inner_text(),
        "heading": card.locator("h2").text_content(),
    }


@pytest.mark.django_db(transaction=True)
def test_a_promotion_during_review_leaves_no_item_without_a_suggestion(
    live_server, champion, bundle_dir, redis_url, tmp_path
):
    make_user("alice", "moderators")
    make_user("carol", "admins")
    candidate = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    finished_run(champion, candidate=candidate, gate=PASSED)
    items = queued_items(champion)
    seen: list[dict[str, str]] = []

    with (
        broker(redis_url),
        worker(redis_url, env={"PROMOTION_RATE_ITEMS": "10"}) as process,
        sync_playwright() as playwright,
    ):
        browser = launch(playwright)
        alice = browser.new_context().new_page()
        carol = browser.new_context().new_page()
        log_in(alice, f"{live_server.url}/review/", "alice", PASSWORD)
        log_in(carol, f"{live_server.url}/training/versions/", "carol", PASSWORD)

        def review_one() -> None:
            now = shown(alice)
            seen.append(now)
            alice.keyboard.press("1")
            expect(alice.locator("#review-panel")).not_to_have_attribute("data-item", now["item"])

        review_one()
        carol.locator(f"#version-{candidate.pk}").get_by_role("button", name="Promote").click()
        expect(carol.locator(".messages")).to_contain_text("Promoting cand-1")
        panel = carol.locator("#promotion")
        deadline = time.monotonic() + 120
        while "became the champion" not in (panel.text_content() or ""):
            assert time.monotonic() < deadline, "the promotion did not finish in 120 s"
            assert process.poll() is None, "the worker died"
            review_one()
            alice.wait_for_timeout(300)
        for _ in range(AFTER_THE_SWITCH):
            review_one()
        carol.reload()
        carol.screenshot(path=str(screenshot_path("promotion.png", tmp_path)), full_page=True)
        browser.close()

    promotion = Promotion.objects.get()
    assert promotion.state == "done", promotion.error
    assert promotion.previous == champion and promotion.rated == 10
    candidate.refresh_from_db()
    assert candidate.status == "champion"
    assert len(seen) > AFTER_THE_SWITCH + 1
    for view in seen:
        assert "Suggested rating" in view["card"], view
        assert "Prediction pending" not in view["card"], view
        assert view["heading"] in ("Champion's prediction", "Former champion's prediction")
    # Every label links the prediction the moderator was shown.
    labels = Label.objects.filter(item__in=items)
    assert labels.count() == len(seen)
    assert not labels.filter(prediction__isnull=True).exists()
    # The items after the switch were the new champion's, or marked as the former's.
    for view in seen[-AFTER_THE_SWITCH:]:
        item = MediaItem.objects.get(uid=view["item"])
        if view["heading"] == "Champion's prediction":
            assert Prediction.objects.filter(item=item, model_version=candidate).exists()
