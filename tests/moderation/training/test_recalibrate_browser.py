"""An admin sets the target DCM rate α of the champion's bounded suggestion in Debian's
Chromium; a real worker makes the recalibrated candidate, and the run page shows the gate
judging it at its own α.

As in the other browser tests, DJANGO_ALLOW_ASYNC_UNSAFE lets the test use the ORM beside
Playwright's event loop, and the database is read only outside the `sync_playwright()` block.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.training.models import TrainingRun
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.worker import broker, empty_redis, worker
from tests.services import redis_url

from .test_browser import GATE

REDIS = redis_url(12)


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.django_db(transaction=True)
def test_carol_sets_alpha_and_the_gate_judges_the_candidate_at_it(
    live_server,
    bounded_champion,
    tmp_path,
):
    empty_redis(REDIS)
    make_user("carol", "admins")
    env = {**GATE, "BUNDLE_DIR": str(tmp_path / "bundles")}

    with broker(REDIS), sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/training/versions/", "carol", PASSWORD)
        page.get_by_text("α 10.0% · Set α…").click()
        page.fill("#alpha-percent", "20")
        page.get_by_role("button", name="Recalibrate").click()
        expect(page.locator(".messages")).to_contain_text("α = 20.0% queued")
        run = page.locator("#run")
        with worker(REDIS, queues="training", env=env) as process:
            expect(run).to_have_attribute("data-state", "succeeded", timeout=120_000)
            assert process.poll() is None, "the worker died"
        expect(page.locator(".gate-alpha")).to_contain_text("judged at its own α = 20.0%")
        expect(page.locator(".run-head")).to_contain_text(
            "Recalibration of the bounded suggestion at α = 20.0%, nothing trained"
        )
        expect(page.locator(".gate")).to_contain_text("its target α = 0.2")
        # The candidate's dashboard: what each α costs, and how much skips review at 20%.
        page.locator(".candidate-dashboard").click()
        expect(page.locator("#tradeoff svg")).to_be_visible()
        expect(page.locator("#tradeoff tr.is-chosen")).to_contain_text("20.0% *")
        expect(page.locator("#automation")).to_contain_text("Published without a moderator")
        expect(page.locator("#automation")).to_contain_text("at most 20.0%, with 90.0% confidence")
        browser.close()

    run = TrainingRun.objects.get()
    assert (run.mode, run.alpha, run.state) == ("cal", 0.2, "succeeded")
    assert run.candidate.manifest["suggestion"]["alpha"] == 0.2
