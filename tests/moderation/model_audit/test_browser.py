"""The model audit in Chromium: an admin reaches it from the navigation, starts a triggered
session, rates every item with the review page's hotkeys, and the figures page shows exactly
the TP, FP, TN and FN that a hand count of those decisions gives; at 390 px the page does not
scroll sideways (its tables scroll inside their card).

Playwright's sync API runs an event loop in this thread: DJANGO_ALLOW_ASYNC_UNSAFE lets the
test read the database between pages, as in tests/moderation/review/test_browser.py.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.model_audit.models import AuditSession
from moderation.review.models import Decision
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.screenshots import screenshot_path

from .conftest import make_version, rated

# suggested, {expert: rating}, the admin's rating. Blocked (32) is above every level.
CASES = [
    (4, {"tag_rules": 4, "lstm": 2, "minilm": None}, 4),
    (8, {"tag_rules": 8, "lstm": 8, "minilm": 4}, 2),
    (16, {"tag_rules": 16, "lstm": 8, "minilm": 16}, 16),
    (4, {"tag_rules": 2, "lstm": 4, "minilm": 4}, 1),
    (8, {"tag_rules": 8, "lstm": None, "minilm": 8}, 32),
    (16, {"tag_rules": 4, "lstm": 16, "minilm": 2}, 8),
]
KEYS = {1: "1", 2: "2", 4: "3", 8: "4", 16: "5"}
NAMES = {4: "R", 8: "X", 16: "XXX"}


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def hand_count(pairs: list[tuple[int | None, int]], level: int) -> dict[str, int]:
    """(model's rating, truth) pairs counted at one level, abstentions left out."""
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for said, truth in pairs:
        if said is None:
            continue
        key = {(True, True): "tp", (True, False): "fp", (False, False): "tn", (False, True): "fn"}
        counts[key[(said >= level, truth >= level)]] += 1
    return counts


def rate(page, truth: int) -> None:
    if truth == 32:
        page.keyboard.press("b")
        page.keyboard.type("illegal material")
        page.keyboard.press("Enter")
    else:
        page.keyboard.press(KEYS[truth])


@pytest.mark.django_db(transaction=True)
def test_an_audit_session_yields_the_counts_a_hand_count_gives(live_server, tmp_path, settings):
    settings.GOLD_SHARE = 0.0
    make_user("carol", "admins")
    champion = make_version("v1")
    truth_of = {}
    for n, (suggested, experts, truth) in enumerate(CASES):
        prediction = rated(champion, suggested=suggested, experts=experts, prompt=f"scene {n}")
        truth_of[str(prediction.item.uid)] = truth
    rated(champion, suggested=2)  # below R: not in a triggered audit

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(page, f"{live_server.url}/review/", "carol", PASSWORD)
        page.get_by_role("link", name="Audit model").click()
        expect(page.locator("h1")).to_have_text("Audit the model")
        page.select_option("#id_mode", "triggered")
        page.fill("#id_size", "6")
        page.fill("#id_days", "7")
        page.get_by_role("button", name="Start auditing").click()

        panel = page.locator("#review-panel")
        seen = []
        for _ in CASES:
            expect(panel.locator(".rating-buttons")).to_be_visible()
            uid = panel.get_attribute("data-item")
            assert uid in truth_of and uid not in seen
            seen.append(uid)
            expect(panel).not_to_contain_text("Suggested rating")  # blind to the model
            if not seen[1:]:
                page.screenshot(path=screenshot_path("model-audit-item.png", tmp_path))
            rate(page, truth_of[uid])
            expect(panel).not_to_have_attribute("data-item", uid)
        expect(panel).to_contain_text("Nothing left to audit")

        page.get_by_role("link", name="Audit sessions").click()
        page.locator("table.audit-sessions").get_by_role("link", name="figures").click()
        expect(page.locator("h1")).to_have_text("Model audit figures")
        page_url = page.url
        table = page.locator("table.audit-counts")
        models = {"suggested": [(s, t) for s, _, t in CASES]}
        for name in ("tag_rules", "lstm", "minilm"):
            models[name] = [(e[name], t) for _, e, t in CASES]
        for name, pairs in models.items():
            for level, label in NAMES.items():
                row = table.locator(f'tbody[data-model="{name}"] tr[data-level="{label}"]')
                for cell, count in hand_count(pairs, level).items():
                    expect(row.locator(f"td.{cell}")).to_have_text(str(count))
        page.screenshot(path=screenshot_path("model-audit.png", tmp_path), full_page=True)

        narrow = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        log_in(
            narrow,
            page.url,
            "carol",
            PASSWORD,
        )
        expect(narrow.locator("table.audit-counts")).to_be_visible()
        overflow = narrow.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        scrolls = narrow.evaluate(
            "[...document.querySelectorAll('.table-scroll')]"
            ".map(t => t.scrollWidth > t.clientWidth && t.clientWidth <= window.innerWidth)"
        )
        assert scrolls == [True, True]  # the counts and the items scroll inside their cards
        narrow.goto(f"{live_server.url}/model-audit/")
        overflow = narrow.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        browser.close()

    decisions = Decision.objects.filter(path="audit")
    assert {str(d.item.uid): d.level for d in decisions} == truth_of
    assert all(d.status == "final" and d.moderator.username == "carol" for d in decisions)
    assert page_url.endswith(f"?session={AuditSession.objects.get().pk}")
