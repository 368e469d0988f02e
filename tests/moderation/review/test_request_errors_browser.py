"""What the review page says when a key's request is refused, and where a key sends a moderator
whose session ended, in Debian's Chromium: never a key that seems to do nothing, never the login
form inside the panel."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.models import Label
from tests.moderation.people import PASSWORD, make_user

from .conftest import make_item, make_prediction, make_version


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.django_db(transaction=True)
def test_a_refused_key_says_so_and_a_signed_out_key_goes_to_the_login_page(live_server, settings):
    settings.GOLD_SHARE = 0.0
    alice = make_user("alice", "moderators")
    champion = make_version("2026-12-07-a")
    items = [make_item(external_id=f"gen-{n}", prompt=f"a harbour {n} at dusk") for n in (1, 2)]
    for item in items:
        make_prediction(item, champion, experts={"lstm": 1}, voter=1, mlp=1)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context()
        page = context.new_page()
        log_in(page, f"{live_server.url}/review/", "alice", PASSWORD)
        panel = page.locator("#review-panel")
        expect(panel.locator("form.decide")).to_be_visible()
        held = panel.get_attribute("data-item")
        page.wait_for_load_state("networkidle")

        # An admin takes alice off the moderators meanwhile: her next key is refused, and said.
        alice.groups.remove(Group.objects.get(name="moderators"))
        page.keyboard.press("Enter")
        expect(page.locator("#request-error [role=alert]")).to_contain_text("That was refused")
        expect(panel).to_have_attribute("data-item", held)

        # Back among the moderators, but her session has ended: the key takes the whole page
        # to the login form, which brings her back to the review page.
        alice.groups.add(Group.objects.get(name="moderators"))
        context.clear_cookies(name="sessionid")
        page.keyboard.press("Enter")
        page.wait_for_url("**/accounts/login/?next=/review/")
        expect(page.locator("#review-panel")).to_have_count(0)
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/review/")
        expect(page.locator("#review-panel form.decide")).to_be_visible()
        browser.close()

    assert not Label.objects.exists()


@pytest.mark.django_db
def test_a_request_htmx_sends_signed_out_moves_the_page_to_the_login_form(client):
    response = client.post(
        "/review/undo/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/review/?x=1"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/review/%3Fx%3D1"
    plain = client.post("/review/undo/")
    assert plain.status_code == 302 and plain["Location"] == "/accounts/login/?next=/review/undo/"
