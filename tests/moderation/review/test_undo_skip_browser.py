"""`u` after `s` in Debian's Chromium (issue 18): undo returns to the item just skipped; after
a decision it reopens that decision, as before. The page logs no console error on the way (the
favicon was the one every page had).

The database is read only outside the `sync_playwright()` block (test_browser.py says why).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.models import Label, ReviewState
from tests.moderation.people import PASSWORD, make_user

from .conftest import make_item, make_prediction, make_version


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def panel_shows(page, item) -> None:
    expect(page.locator("#review-panel")).to_have_attribute("data-item", str(item.uid))


@pytest.mark.django_db(transaction=True)
def test_u_after_s_brings_back_the_skipped_item_and_u_after_a_decision_reopens_it(
    live_server, settings
):
    settings.GOLD_SHARE = 0.0
    alice = make_user("alice", "moderators")
    champion = make_version("2026-11-26-a")
    lighthouse, harbour = (
        make_item(source="api", external_id=f"gen-{n}", prompt=f"a {n} at dusk, oil painting")
        for n in ("lighthouse", "harbour")
    )
    for item in (lighthouse, harbour):
        make_prediction(item, champion, experts={"lstm": 1}, voter=1, mlp=1)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: problems.append(r.url) if r.status >= 400 else None)
        log_in(page, f"{live_server.url}/review/", "alice", PASSWORD)
        panel_shows(page, lighthouse)
        page.wait_for_load_state("load")
        expect(page.locator(".hotkeys")).to_contain_text("back to the previous item")

        page.keyboard.press("s")
        panel_shows(page, harbour)
        page.keyboard.press("u")
        panel_shows(page, lighthouse)
        expect(page.locator("#review-panel")).to_contain_text("Back to the item you skipped")

        page.keyboard.press("2")  # decide it PG13; the harbour, given back, comes next
        panel_shows(page, harbour)
        page.keyboard.press("u")
        panel_shows(page, lighthouse)
        expect(page.locator("#review-panel")).to_contain_text("Reopened your previous item")
        expect(page.locator("#review-panel")).to_contain_text("by alice, just now.")
        browser.close()

    assert problems == []
    assert list(Label.objects.values_list("item__external_id", "level", "moderator")) == [
        ("gen-lighthouse", 2, alice.pk)
    ]
    states = dict(ReviewState.objects.values_list("item__external_id", "claimed_by"))
    assert states == {"gen-lighthouse": alice.pk, "gen-harbour": None}
