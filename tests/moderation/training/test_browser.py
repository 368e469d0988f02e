"""An admin retrains the MLP in Debian's Chromium, follows it live, and promotes the candidate.

A real worker on Redis runs the retrain. It is started only once the run's page shows the run
as queued, so the page must follow the run's progress by polling, not by being reloaded.

As in the review's browser test, DJANGO_ALLOW_ASYNC_UNSAFE lets the test use the ORM beside
Playwright's event loop, and the database is read only outside the `sync_playwright()` block:
inside it, Playwright's greenlet gives Django a second connection that nothing closes.
"""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.inference.models import ModelVersion
from moderation.training.models import TrainingRun
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.screenshots import screenshot_path
from tests.moderation.worker import broker, empty_redis, worker
from tests.services import redis_url

REDIS = redis_url(14)
# The gate passes on the tiny fixture data but waits for an admin; the worker reads the same
# settings from its environment.
GATE = {
    "AUTO_PROMOTE": "0",
    "GATE_MIN_EXPLICIT": "0",
    "GATE_F1_TOLERANCE": "1.0",
    "GATE_DCM_TOLERANCE": "1.0",
    "GATE_SEVERE_TOLERANCE": "100",
}


RECORD_SUBMITS = """action => {
    const form = document.querySelector(`form[action="${action}"]`);
    const submits = [];
    document.addEventListener("submit", (event) => {
        const button = form.querySelector("button[type=submit]");
        submits.push({
            prevented: event.defaultPrevented,
            disabled: button.disabled,
            text: button.textContent.trim(),
            spinner: button.querySelector(".busy-spinner") !== null,
        });
        sessionStorage.setItem("submits", JSON.stringify(submits));
        if (submits.length === 1) setTimeout(() => form.requestSubmit(), 0);
    });
}"""


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def redis_url():
    return empty_redis(REDIS)


@pytest.mark.django_db(transaction=True)
def test_carol_retrains_follows_the_run_and_promotes_the_candidate(
    live_server, labelled, redis_url, settings, tmp_path
):
    settings.AUTO_PROMOTE = False
    make_user("carol", "admins")
    make_user("alice", "moderators")
    champion = ModelVersion.objects.get(status="champion")
    worker_env = {**GATE, "BUNDLE_DIR": str(tmp_path / "bundles")}

    with broker(redis_url), sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/training/", "carol", PASSWORD)
        page.check("input[value=mlp]")
        expect(page.locator(".mode-estimate[data-mode=mlp]")).to_have_text(
            "no run yet to time it by"
        )
        # The button as each submit event leaves it (busy.js has run), kept across the
        # navigation; the first submit tries a second one at once, as a double click would.
        page.evaluate(RECORD_SUBMITS, reverse("training:start"))
        posts = []
        page.on("request", lambda r: r.method == "POST" and "/start/" in r.url and posts.append(r))
        page.get_by_role("button", name="Start retrain").click()

        # The admin lands on the new run's page, which follows the run by polling.
        expect(page).to_have_url(re.compile(r"/training/runs/\d+/$"))
        panel = page.locator("#run")
        expect(panel).to_have_attribute("data-state", "queued")
        expect(page.locator(".messages")).to_contain_text("queued")
        first, second = json.loads(page.evaluate("sessionStorage.getItem('submits')"))
        assert first == {"prevented": False, "disabled": True, "text": "Starting…", "spinner": True}
        assert second["prevented"], "the second submit was sent"
        assert len(posts) == 1
        page.evaluate("window.stillTheSamePage = true")

        with worker(redis_url, queues="training", env=worker_env) as process:
            expect(panel).to_have_attribute("data-state", "succeeded", timeout=120_000)
            assert process.poll() is None, "the worker died"
        expect(panel.locator("strong.stage")).to_have_text("Done")
        expect(panel.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
        expect(panel.locator("h1 .run-status")).to_have_text(
            "Finished, waiting for an admin to promote it"
        )
        expect(panel.locator(".run-stage")).to_have_count(6)
        expect(panel.locator(".run-stage-done")).to_have_count(6)
        assert page.evaluate("window.stillTheSamePage") is True  # polled, never reloaded

        gate = page.locator(".gate-table")
        expect(gate).to_be_visible()
        expect(gate.locator("thead")).to_contain_text("Candidate")
        expect(gate.locator("thead")).to_contain_text("Champion")
        expect(page.locator(".gate-verdict")).to_have_text("passed")
        candidate = page.locator("[data-candidate-version]").get_attribute("data-candidate-version")
        page.screenshot(path=str(screenshot_path("retrain-gate.png", tmp_path)), full_page=True)

        page.click("text=Promote candidate")  # returns at once; a worker brings it in
        expect(page.locator(".messages")).to_contain_text(f"Promoting {candidate}")
        panel = page.locator("#promotion")
        expect(panel).to_have_attribute("data-state", "queued")
        with worker(redis_url, queues="inference,default", env=worker_env):
            expect(panel).to_contain_text("became the champion", timeout=120_000)
        row = page.locator(f"tr[data-version='{candidate}']")
        expect(row).to_have_attribute("data-status", "champion")

        page.goto(f"{live_server.url}/dashboards/")
        expect(page.locator("main")).to_contain_text(candidate)
        expect(page.locator("main")).to_contain_text(champion.version)

        moderator = browser.new_page()
        log_in(moderator, f"{live_server.url}/accounts/login/", "alice", PASSWORD)
        for url in ("/training/", "/training/versions/", "/dashboards/"):
            assert moderator.goto(f"{live_server.url}{url}").status == 403, url
        browser.close()

    run = TrainingRun.objects.get()
    assert run.state == "succeeded" and run.candidate.version == candidate
    assert run.candidate.status == ModelVersion.Status.CHAMPION
    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.FORMER
