"""Blind second decisions in Chromium: two moderators decide the same item, one after the other,
and neither page ever shows the other's decision; the admin adjudicates with both in view, and
each moderator then sees the outcome on their own history page.

Playwright's sync API runs an event loop in this thread: DJANGO_ALLOW_ASYNC_UNSAFE lets the
test read the database between pages, as in test_browser.py.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.labels import label_get_current
from tests.moderation.people import PASSWORD, make_user

from .conftest import make_item, make_prediction, make_version


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def panel_shows(page, item) -> None:
    expect(page.locator("#review-panel")).to_have_attribute("data-item", str(item.uid))


@pytest.mark.django_db(transaction=True)
def test_blind_double_review_never_shows_one_moderator_the_others_decision(live_server, settings):
    settings.DOUBLE_REVIEW_SHARE = 1.0
    settings.GOLD_SHARE = 0.0
    make_user("alice", "moderators")
    make_user("bob", "moderators")
    make_user("carol", "admins")
    champion = make_version("v1")
    item = make_item(prompt="a knight in dented armour on a misty moor")
    make_prediction(item, champion, experts={"tag_rules": 2, "lstm": 2}, voter=2, mlp=2)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        alice = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(alice, f"{live_server.url}/review/", "alice", PASSWORD)
        panel_shows(alice, item)
        alice.keyboard.press("3")  # R: the first answer of a blind double review
        expect(alice.locator("#review-panel")).to_contain_text("The queue is empty")

        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(bob, f"{live_server.url}/review/", "bob", PASSWORD)
        panel_shows(bob, item)
        panel = bob.locator("#review-panel")
        expect(panel).not_to_contain_text("Decided before")
        expect(panel).not_to_contain_text("alice")
        expect(panel.locator(".review-side .chip.rating-r")).to_have_count(0)
        expect(panel.get_by_role("link", name="history")).to_have_count(0)
        history = bob.request.get(f"{live_server.url}/review/items/{item.uid}/")
        assert history.status == 403
        assert "alice" not in history.text() and "R</span>" not in history.text()
        bob.keyboard.press("4")  # X: differs, so the item goes to an admin
        expect(panel).to_contain_text("an admin decides")

        # Neither sees the other's rating on their history page while the admin decides.
        for page, other in ((alice, "bob"), (bob, "alice")):
            page.goto(f"{live_server.url}/review/mine/")
            expect(page.locator("table.list")).to_contain_text("an admin decides")
            expect(page.locator("main")).not_to_contain_text(other)
        expect(alice.locator("table.list")).not_to_contain_text("X")
        expect(bob.locator("table.list .chip")).to_have_text(["X"])

        carol = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(carol, f"{live_server.url}/review/", "carol", PASSWORD)
        panel_shows(carol, item)
        adjudication = carol.locator(".adjudication")
        expect(adjudication).to_contain_text("Two decisions differ")
        expect(adjudication).to_contain_text("alice")
        expect(adjudication).to_contain_text("bob")
        carol.keyboard.press("4")
        expect(carol.locator("#review-panel")).to_contain_text("The queue is empty")

        alice.goto(f"{live_server.url}/review/mine/")
        expect(alice.locator("table.list")).to_contain_text("adjudicated as X")
        bob.goto(f"{live_server.url}/review/mine/")
        expect(bob.locator("table.list")).to_contain_text("adjudicated as X")
        browser.close()
    label = label_get_current(item=item)
    assert (label.level, label.moderator.username) == (8, "carol")


@pytest.mark.django_db(transaction=True)
def test_a_second_key_while_a_decision_is_on_its_way_decides_nothing_blind(live_server, settings):
    settings.GOLD_SHARE = 0.0
    make_user("alice", "moderators")
    champion = make_version("v1")
    first, second = make_item(prompt="a red kite over a hill"), make_item(prompt="a tin robot")
    for item in (first, second):
        make_prediction(item, champion, experts={"tag_rules": 1, "lstm": 1}, voter=1, mlp=1)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/review/", "alice", PASSWORD)
        panel_shows(page, first)
        page.route("**/decide/", lambda route: (page.wait_for_timeout(300), route.continue_()))
        page.keyboard.press("1")
        page.keyboard.press("2")  # while the first decision is on its way: dropped
        panel_shows(page, second)
        page.wait_for_timeout(300)
        browser.close()
    assert list(first.decisions.values_list("level", flat=True)) == [1]
    assert not second.decisions.exists()
