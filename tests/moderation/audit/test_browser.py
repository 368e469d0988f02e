"""An admin reads the audit trail in Debian's Chromium and narrows it to the overrides.

The trail looks like an afternoon of a real deployment: labels, a claim taken over after it
expired, a conflict, an admin's override with its reason, a retrain promoting a candidate,
and a purge. The screenshot is the README's (docs/audit.png). As in the other browser tests,
the ORM is used only outside the `sync_playwright()` block.
"""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from moderation.audit.services import Action, audit_record
from moderation.demo.chromium import launch, log_in
from moderation.inference.models import ModelVersion
from tests.moderation.factories import make_item
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.review.conftest import make_version
from tests.moderation.screenshots import screenshot_path


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def build_trail() -> None:
    alice, bob, dmitri = (make_user(name, "moderators") for name in ("alice", "bob", "dmitri"))
    carol = make_user("carol", "admins")
    items = [make_item(source="civitai", external_id=str(40718233 + 7 * n)) for n in range(5)]
    old = make_version("2026-11-02-a", status=ModelVersion.Status.CHAMPION)
    new = make_version("2026-12-03-a", status=ModelVersion.Status.CANDIDATE)
    start = timezone.now().replace(hour=13, minute=2, second=11, microsecond=0)
    rows = [
        dict(action=Action.CLAIM, actor=alice, item=items[0], old="queued", new="claimed by alice"),
        dict(action=Action.LABEL, actor=bob, item=items[1], old="—", new="PG13"),
        dict(
            action=Action.REVIEW_STATE, actor=bob, item=items[1], old="claimed by bob", new="done"
        ),
        dict(
            action=Action.CLAIM,
            actor=dmitri,
            item=items[0],
            old="claimed by alice (expired)",
            new="claimed by dmitri",
        ),
        dict(action=Action.LABEL, actor=dmitri, item=items[0], old="—", new="R"),
        dict(action=Action.CONFLICT, actor=alice, item=items[0], old="R", new="X (not recorded)"),
        dict(
            action=Action.OVERRIDE,
            actor=alice,
            item=items[0],
            old="R",
            new="X",
            reason="Nudity in the mirror's reflection, easy to miss at thumbnail size.",
        ),
        dict(action=Action.LABEL, actor=alice, item=items[2], old="—", new="XXX"),
        dict(
            action=Action.CONTENT,
            actor=carol,
            item=items[3],
            old=str(items[3].uid)[:8],
            new="a new item",
            reason="The platform sent another image's prompt.",
        ),
        dict(
            action=Action.MODEL_STATUS,
            model_version=old,
            old="champion",
            new="retired",
            reason="",
        ),
        dict(
            action=Action.MODEL_STATUS,
            model_version=new,
            old="candidate",
            new="champion",
            reason="passed the gate",
        ),
        dict(
            action=Action.PURGE,
            actor=carol,
            item=items[4],
            old="content",
            new="purged",
            reason="Erasure request #4471 from the uploader.",
        ),
    ]
    for n, row in enumerate(rows):
        at = start + timedelta(minutes=7 * n, seconds=13 * n)
        with mock.patch("django.utils.timezone.now", return_value=at):
            audit_record(**row)


@pytest.mark.django_db(transaction=True)
def test_an_admin_reads_the_audit_trail_and_filters_it(live_server, tmp_path):
    build_trail()

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/audit/", "carol", PASSWORD)

        expect(page.locator("h1")).to_have_text("Audit trail")
        rows = page.locator("table.audit-table tbody tr")
        expect(rows).to_have_count(12)
        expect(rows.first).to_contain_text("purge")
        expect(rows.first).to_contain_text("Erasure request #4471")
        expect(page.get_by_text("claimed by alice (expired)")).to_be_visible()
        expect(page.locator("nav.nav a[aria-current=page]")).to_have_text("Audit")
        page.screenshot(path=str(screenshot_path("audit.png", tmp_path)), full_page=True)

        page.select_option("#id_action", "override")
        page.click("form.audit-filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("alice")
        expect(rows.first).to_contain_text("mirror's reflection")
        download = page.locator("a.download")
        # The form sends its empty fields too: the link keeps whatever the page was given.
        expect(download).to_have_attribute(
            "href", re.compile(r"^/audit/export\.csv\?.*action=override")
        )

        rows.first.locator("a.item-link").click()
        expect(page.locator("h1")).to_have_text("Item history")
        expect(page.locator("#audit tbody tr")).to_have_count(5)
        browser.close()
