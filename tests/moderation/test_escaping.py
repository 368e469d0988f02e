"""Every page that shows user text escapes it: checked in Chromium that no script runs.

Items carry markup in their prompt, negative prompt, tags, source and external id. A moderator
opens the review page (and the next item swapped in by htmx after a decision), an item's
history and the disagreement list; an admin opens the dashboards. On every page
`window.__pwned` stays undefined and the markup is visible as text.

As in tests/moderation/review/test_browser.py, the database is only touched outside the
`sync_playwright()` block (Playwright's greenlet would open a second connection there).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.decisions import label_create
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.review.conftest import make_item, make_prediction, make_version

SCRIPT = "<script>window.__pwned = 1</script>"
ONERROR = '<img src=x onerror="window.__pwned=2">'
HOSTILE = {
    "prompt": f"a cat {SCRIPT} on a sofa",
    "negative_prompt": f"blurry {ONERROR}",
    "tags": [[SCRIPT, 0.9], [ONERROR, 0.4]],
    "source": ONERROR,
}


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def sign_in(page: Page, url: str, username: str) -> None:
    log_in(page, f"{url}/accounts/login/", username, PASSWORD)
    page.wait_for_load_state("networkidle")


def assert_nothing_ran(page: Page, *visible: str) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)  # an onerror handler fires once the broken image has failed
    assert page.evaluate("typeof window.__pwned") == "undefined", page.url
    assert page.locator("script:not([src])").filter(has_text="__pwned").count() == 0
    assert page.locator("img[onerror]").count() == 0
    for text in visible:
        expect(page.locator("body")).to_contain_text(text)


@pytest.mark.django_db(transaction=True)
def test_pages_show_markup_as_text_and_run_none_of_it(live_server) -> None:
    make_user("alice", "moderators")
    bob = make_user("bob", "moderators")
    make_user("carol", "admins")
    champion = make_version("v-escape")
    queued = [make_item(external_id=f"q{n}", **HOSTILE) for n in range(2)]
    for item in queued:
        make_prediction(item, champion, voter=2, mlp=2)
    # Labelled X by bob but rated PG13: a disagreement and a severe down-class item.
    labelled = make_item(external_id=SCRIPT, **HOSTILE)
    make_prediction(labelled, champion, voter=2, mlp=2)
    label_create(item=labelled, level=8, moderator=bob)
    url = live_server.url

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, url, "alice")

        page.goto(f"{url}/review/")
        expect(page.locator("#review-panel")).to_have_attribute("data-item", str(queued[0].uid))
        assert_nothing_ran(page, SCRIPT, ONERROR)
        page.keyboard.press("Enter")  # the next item arrives through an htmx swap
        expect(page.locator("#review-panel")).to_have_attribute("data-item", str(queued[1].uid))
        assert_nothing_ran(page, SCRIPT, ONERROR)

        page.goto(f"{url}/review/items/{labelled.uid}/")
        assert_nothing_ran(page, SCRIPT, ONERROR)

        page.goto(f"{url}/review/disagreements/")
        expect(page.locator("table.list tbody tr")).to_have_count(1)
        assert_nothing_ran(page, ONERROR)

        admin = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(admin, url, "carol")
        admin.goto(f"{url}/dashboards/")
        assert_nothing_ran(admin, ONERROR)
        for path in (f"/dashboards/versions/{champion.version}/", "/dashboards/health/"):
            admin.goto(f"{url}{path}")
            assert_nothing_ran(admin)
        browser.close()
