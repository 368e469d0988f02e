"""Grid review in Debian's Chromium: a bulk confirm of a whole page, a range chosen with the
keyboard, the tag filters, and the page's items going back to the queue when it is left.

As in test_browser.py, DJANGO_ALLOW_ASYNC_UNSAFE lets the test use the ORM beside Playwright's
event loop, and the database is read only outside the `sync_playwright()` block.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.models import Decision, ReviewState
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.screenshots import screenshot_path

from .conftest import make_item, make_prediction, make_version

PG, PG13, R, X = 1, 2, 4, 8
PROMPTS = [
    "a lighthouse on a cliff at dusk, oil painting",
    "portrait of an old fisherman, dramatic light",
    "a bowl of ramen, studio photo, steam rising",
    "knight in dented armour on a misty moor",
    "a neon street market in the rain, cinematic",
    "two cats asleep on a windowsill",
    "watercolour map of an imaginary archipelago",
    "a dancer mid-leap, long exposure, red silk",
]


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def queued(version, n: int, *, level: int = PG13, warned: bool = False, **fields) -> list:
    """`n` queued items suggested `level`; `warned`: an expert rates them one step higher."""
    items = []
    for i in range(n):
        item = make_item(**{"prompt": PROMPTS[i % len(PROMPTS)], **fields})
        above = {PG: PG13, PG13: R, R: X}[level]
        experts = {"tag_rules": above if warned else level, "lstm": level, "minilm": level}
        make_prediction(item, version, experts=experts, voter=level, mlp=level)
        items.append(item)
    return items


def open_grid(browser, live_server, username: str, width: int = 1280):
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, f"{live_server.url}/review/grid/", username, PASSWORD)
    expect(page.locator("h1")).to_have_text("Grid review")
    return page


@pytest.mark.django_db(transaction=True)
def test_a_bulk_confirm_of_forty_items_leaves_the_warned_ones_in_the_queue(
    live_server, settings, tmp_path
):
    settings.GRID_PAGE_SIZE = 44
    make_user("alice", "moderators")
    champion = make_version("v1")
    plain = queued(champion, 8, image=True) + queued(champion, 32, level=PG)
    warned = queued(champion, 4, warned=True, prompt="a figure in a torn dress, dim alley")

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_grid(browser, live_server, "alice")
        page.get_by_role("link", name="Grid", exact=True).click()  # reachable from the navigation
        page.get_by_role("button", name="Load a page").click()
        cards = page.locator(".grid-card")
        expect(cards).to_have_count(44)
        expect(page.locator(".grid-card.is-warned .grid-warning")).to_have_count(4)
        for i in (0, 2, 5):
            cards.nth(i).click()
        expect(page.locator("#grid-selected")).to_have_text("3")
        page.screenshot(path=str(screenshot_path("grid-review.png", tmp_path)), full_page=True)
        page.keyboard.press("a")
        expect(page.locator("#grid-selected")).to_have_text("44")
        page.keyboard.press("Enter")
        dialog = page.locator("#grid-confirm")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Confirm the suggested rating of 40 items?")
        expect(dialog).to_contain_text("4 with a down-class warning are left out")
        page.keyboard.press("Enter")
        expect(page.locator(".messages")).to_contain_text("Recorded 40 decisions as suggested.")
        expect(page.locator(".messages")).to_contain_text("4 left out: down-class warning")
        expect(page.locator(".grid-card")).to_have_count(0)
        browser.close()

    decisions = Decision.objects.filter(path=Decision.Path.GRID, status="final")
    assert decisions.count() == 40
    assert set(decisions.values_list("item_id", flat=True)) == {i.pk for i in plain}
    for item in warned:
        state = ReviewState.objects.get(item=item)
        assert (state.state, state.claimed_by, state.grid) == ("queued", None, False)


@pytest.mark.django_db(transaction=True)
def test_a_range_chosen_with_shift_and_the_arrows_gets_one_rating(live_server):
    make_user("alice", "moderators")
    champion = make_version("v1")
    queued(champion, 6, level=R)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_grid(browser, live_server, "alice")
        page.get_by_role("button", name="Load a page").click()
        cards = page.locator(".grid-card")
        expect(cards).to_have_count(6)
        order = [cards.nth(i).get_attribute("data-uid") for i in range(6)]
        cards.nth(1).focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("Shift+ArrowLeft")
        page.keyboard.press("Shift+ArrowRight")
        expect(page.locator("#grid-selected")).to_have_text("3")
        expect(page.locator('.grid-card[aria-selected="true"]')).to_have_count(3)
        page.keyboard.press("2")
        expect(page.locator("#grid-confirm")).to_contain_text("Set PG13 for 3 items?")
        page.keyboard.press("Enter")
        expect(page.locator(".messages")).to_contain_text("Recorded 3 decisions as PG13.")
        expect(page.locator(".grid-card")).to_have_count(3)
        # On a phone the same page wraps its cards: nothing scrolls sideways.
        phone = open_grid(browser, live_server, "alice", width=390)
        expect(phone.locator(".grid-card")).to_have_count(3)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        browser.close()

    decided = Decision.objects.filter(path=Decision.Path.GRID)
    assert sorted(str(d.item.uid) for d in decided) == sorted(order[2:5])
    assert set(decided.values_list("level", flat=True)) == {PG13}
    # PG13 is one step below the suggested R: final, not a big downgrade.
    assert set(decided.values_list("status", flat=True)) == {"final"}


@pytest.mark.django_db(transaction=True)
def test_the_tag_filters_show_exactly_the_matching_items(live_server):
    make_user("alice", "moderators")
    champion = make_version("v1")
    cat_sofa = queued(champion, 2, tags=[["cat", 0.9], ["sofa", 0.8]])
    queued(champion, 2, tags=[["cat", 0.9], ["dog", 0.8]])
    queued(champion, 2, tags=[["beach", 0.9]])

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_grid(browser, live_server, "alice")
        page.get_by_label("With all tags").fill("cat")
        page.get_by_label("Without tags").fill("dog, beach")
        page.get_by_role("button", name="Load a page").click()
        cards = page.locator(".grid-card")
        expect(cards).to_have_count(2)
        shown = {cards.nth(i).get_attribute("data-uid") for i in range(2)}
        expect(page.get_by_label("With all tags")).to_have_value("cat")
        page.get_by_label("With all tags").fill("")
        page.get_by_label("Without tags").fill("cat")
        page.get_by_role("button", name="Load a new page").click()
        expect(cards).to_have_count(2)
        expect(page.locator(".grid-tags")).to_have_text(["beach", "beach"])
        browser.close()

    assert shown == {str(i.uid) for i in cat_sofa}


@pytest.mark.django_db(transaction=True)
def test_leaving_the_page_or_an_expired_lease_gives_the_items_back(live_server):
    alice_user = make_user("alice", "moderators")
    make_user("bob", "moderators")
    champion = make_version("v1")
    left = queued(champion, 3, level=PG)
    lapsed = queued(champion, 1, level=R, source="lapsed")[0]

    with sync_playwright() as playwright:
        browser = launch(playwright)
        alice = open_grid(browser, live_server, "alice")
        alice.get_by_label("Source").fill("test")
        alice.get_by_role("button", name="Load a page").click()
        expect(alice.locator(".grid-card")).to_have_count(3)
        alice.get_by_role("link", name="My decisions").click()  # leave the page
        expect(alice.locator("h1")).not_to_have_text("Grid review")
        # The beacon lands in the background: the grid page soon shows nothing held.
        for _ in range(40):
            alice.goto(f"{live_server.url}/review/grid/")
            if alice.locator(".empty-state").count():
                break
            alice.wait_for_timeout(250)
        expect(alice.locator(".empty-state")).to_contain_text("You hold no grid page")
        browser.close()
    states = ReviewState.objects.filter(item__in=left)
    assert set(states.values_list("state", "claimed_by", "grid")) == {("queued", None, False)}

    # A lease that ran out: the item is off alice's page and back in the queue for bob.
    ReviewState.objects.filter(item=lapsed).update(
        state="claimed",
        grid=True,
        claimed_by=alice_user,
        claimed_until=timezone.now() - timedelta(minutes=1),
    )
    with sync_playwright() as playwright:
        browser = launch(playwright)
        alice = open_grid(browser, live_server, "alice")
        expect(alice.locator(".empty-state")).to_be_visible()
        bob = open_grid(browser, live_server, "bob")
        bob.get_by_label("Source").fill("lapsed")
        bob.get_by_role("button", name="Load a page").click()
        expect(bob.locator(".grid-card")).to_have_count(1)
        expect(bob.locator(".grid-card")).to_have_attribute("data-uid", str(lapsed.uid))
        browser.close()
    state = ReviewState.objects.select_related("claimed_by").get(item=lapsed)
    assert (state.state, state.claimed_by.username, state.grid) == ("claimed", "bob", True)
