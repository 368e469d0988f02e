"""An admin opens the DCM dashboard in Debian's Chromium and sees champion and candidate.

The test data look like a few months of a real deployment: four versions, each retrain
re-evaluating the champion on the test split, live labels from three moderators, and a few
explicit items that slipped to PG13. The screenshot is the README's (docs/dcm-dashboard.png).
As in the review's browser test, the ORM is used only outside the `sync_playwright()` block.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.inference.models import ModelVersion
from tests.moderation.screenshots import screenshot_path

from .conftest import (
    PASSWORD,
    make_evaluation,
    make_item,
    make_label,
    make_prediction,
    make_user,
    make_version,
)

LEVELS = [1, 2, 4, 8, 16]
# A test split shaped like the corpus's: explicit items are rare.
CLASS_SIZES = [860, 420, 270, 110, 40]
EXPERTS = {"tag_rules": 0.70, "lstm": 0.74, "minilm": 0.80, "open_nsfw": 0.78}


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def predict(rng, y_true: np.ndarray, skill: float, caution: float) -> np.ndarray:
    """A model that is right with probability `skill`; its errors go up with probability
    `caution` (a cautious model errs towards the more restrictive rating) and are one
    class off, now and then two."""
    wrong = rng.random(len(y_true)) > skill
    up = rng.random(len(y_true)) < caution
    step = np.where(rng.random(len(y_true)) < 0.15, 2, 1)
    shifted = np.where(up, y_true + step, y_true - step)
    return np.clip(np.where(wrong, shifted, y_true), 0, 4)


def evaluate(version, rng, y_true, skill: float, caution: float, at: datetime, severe: int = 0):
    predictions = {
        name: predict(rng, y_true, expert_skill * skill / 0.85, 0.5)
        for name, expert_skill in EXPERTS.items()
    }
    predictions["open_nsfw"][rng.random(len(y_true)) < 0.3] = -1  # prompt-only items
    predictions["voter"] = predict(rng, y_true, skill - 0.03, caution - 0.1)
    predictions["mlp"] = predict(rng, y_true, skill, caution)
    # A few explicit items that every output rated PG13: the severe DCM the gate watches.
    slipped = rng.choice(np.flatnonzero(y_true >= 3), size=severe, replace=False)
    for name in ("voter", "mlp"):
        predictions[name][slipped] = 1
    predictions["suggested"] = np.maximum(predictions["voter"], predictions["mlp"])
    return make_evaluation(
        version,
        y_true.tolist(),
        {k: v.tolist() for k, v in predictions.items()},
        at=at,
        bootstrap=60,
    )


def build_history() -> tuple[ModelVersion, ModelVersion]:
    rng = np.random.default_rng(7)
    y_true = np.repeat(np.arange(5), CLASS_SIZES)
    today = timezone.now().replace(hour=10, minute=0, second=0, microsecond=0)
    day = lambda n: today - timedelta(days=n)  # noqa: E731
    first = make_version("2026-09-14-a", status=ModelVersion.Status.RETIRED)
    second = make_version("2026-10-08-a", status=ModelVersion.Status.RETIRED)
    champion = make_version("2026-11-02-a", status=ModelVersion.Status.CHAMPION)
    candidate = make_version("2026-12-03-a", status=ModelVersion.Status.CANDIDATE)
    # Each retrain evaluates its candidate and re-evaluates the champion of the day.
    evaluate(first, rng, y_true, 0.78, 0.45, day(80), severe=6)
    evaluate(first, rng, y_true, 0.78, 0.45, day(56), severe=6)
    evaluate(second, rng, y_true, 0.82, 0.60, day(56), severe=4)
    evaluate(second, rng, y_true, 0.82, 0.60, day(31), severe=3)
    evaluate(champion, rng, y_true, 0.86, 0.75, day(31), severe=2)
    evaluate(champion, rng, y_true, 0.86, 0.75, day(1), severe=2)
    evaluate(candidate, rng, y_true, 0.88, 0.72, day(1), severe=1)

    moderators = [make_user(name, "moderators") for name in ("alice", "bob", "dmitri")]
    for i in range(90):
        true_level = LEVELS[[0, 0, 0, 1, 1, 2, 2, 3, 3, 4][i % 10]]
        item = make_item(external_id=f"{40718233 + 7 * i}", source="civitai", queued=False)
        severe = i in (7, 29, 58)
        champion_level = 2 if severe else true_level
        experts = {name: true_level for name in EXPERTS}
        make_prediction(
            item, champion, suggested=champion_level, voter=champion_level, experts=experts
        )
        make_prediction(item, candidate, suggested=true_level, experts=experts)
        make_label(item, true_level, moderators[i % 3], at=day(i % 20))
    return champion, candidate


@pytest.mark.django_db(transaction=True)
def test_an_admin_sees_champion_and_candidate_on_the_dcm_dashboard(live_server, tmp_path):
    make_user("carol", "admins")
    champion, candidate = build_history()

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/dashboards/", "carol", PASSWORD)

        expect(page.locator("h1")).to_have_text("Models and down-class misclassification")
        cards = page.locator(".version-card")
        expect(cards).to_have_count(4)
        expect(cards.nth(0)).to_have_attribute("data-version", champion.version)
        expect(cards.nth(0)).to_contain_text("champion")
        expect(cards.nth(1)).to_have_attribute("data-version", candidate.version)
        expect(cards.nth(1)).to_contain_text("candidate")
        expect(page.locator("svg.chart")).to_have_count(2)
        expect(page.locator("#severe tbody tr")).to_have_count(3)
        page.screenshot(path=str(screenshot_path("dcm-dashboard.png", tmp_path)), full_page=True)

        page.locator(".version-card").first.locator("h3 a").click()
        expect(page.locator(".matrix").first).to_be_visible()
        browser.close()
