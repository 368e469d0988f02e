"""The audit trail page: who may open it, its filters, escaping, and its query count.

Rows are written by `audit_record`, as the services write them; `at` is set on insert only
(the table is append-only), so rows of other days are written with the clock moved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest

from moderation.audit.models import AuditEvent
from moderation.audit.services import Action, audit_record
from tests.moderation.factories import make_item
from tests.moderation.review.conftest import make_version


def record_on(day: str, **fields) -> AuditEvent:
    """An audit row written at noon UTC on `day` (YYYY-MM-DD)."""
    at = datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=at):
        return audit_record(**fields)


@pytest.fixture
def trail(alice, bob, carol):
    """Four rows on four days: alice's and bob's labels on two items, carol's override of
    bob's label, and the system promoting a model version."""
    first = make_item(source="civitai", external_id="111")
    second = make_item(source="civitai", external_id="222")
    version = make_version("2026-11-02-a")
    return {
        "first": first,
        "second": second,
        "label": record_on("2026-11-01", action=Action.LABEL, actor=alice, item=first, new="R"),
        "other": record_on("2026-11-02", action=Action.LABEL, actor=bob, item=second, new="PG"),
        "override": record_on(
            "2026-11-03",
            action=Action.OVERRIDE,
            actor=carol,
            item=second,
            old="PG",
            new="X",
            reason="nudity in the background",
        ),
        "promotion": record_on(
            "2026-11-04",
            action=Action.MODEL_STATUS,
            model_version=version,
            old="candidate",
            new="champion",
        ),
    }


def shown(response, trail: dict | None = None) -> list[int]:
    """The rows on the page by id, newest first; with `trail`, only the trail's rows (items
    may have rows of their own from being created)."""
    assert response.status_code == 200
    ours = {row.pk for row in (trail or {}).values() if isinstance(row, AuditEvent)}
    pks = [event.pk for event in response.context["page"].object_list]
    return [pk for pk in pks if pk in ours] if trail else pks


def test_an_admin_sees_every_row_newest_first(carol_client, trail):
    response = carol_client.get("/audit/")
    names = ["promotion", "override", "other", "label"]
    assert shown(response, trail) == [trail[n].pk for n in names]
    page = response.content.decode()
    assert "nudity in the background" in page
    assert "system" in page and "2026-11-02-a" in page
    assert f'href="/review/items/{trail["first"].uid}/"' in page


def test_the_item_filter_keeps_that_items_rows(carol_client, trail):
    response = carol_client.get("/audit/", {"item": trail["second"].uid})
    assert shown(response, trail) == [trail["override"].pk, trail["other"].pk]


def test_the_actor_filter_keeps_that_persons_rows(carol_client, trail):
    assert shown(carol_client.get("/audit/", {"actor": "alice"}), trail) == [trail["label"].pk]


def test_the_action_filter_keeps_that_actions_rows(carol_client, trail):
    response = carol_client.get("/audit/", {"action": "override"})
    assert shown(response, trail) == [trail["override"].pk]


def test_the_date_filters_keep_whole_days_both_included(carol_client, trail):
    response = carol_client.get("/audit/", {"since": "2026-11-02", "until": "2026-11-03"})
    assert shown(response, trail) == [trail["override"].pk, trail["other"].pk]
    assert shown(carol_client.get("/audit/", {"until": "2026-11-01"}), trail) == [trail["label"].pk]


def test_a_moderator_is_refused(client, alice):
    client.force_login(alice)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403


def test_an_anonymous_visitor_is_sent_to_sign_in(client, db):
    response = client.get("/audit/?action=label")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/audit/")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"item": "not-a-uid"}, "item"),
        ({"item": "1234"}, "item"),
        ({"action": "delete"}, "action"),
        ({"actor": "nobody"}, "actor"),
        ({"since": "2026-13-45"}, "since"),
        ({"since": "2026-11-05", "until": "2026-11-01"}, "until"),
        ({"until": "9999-12-31", "page": "last"}, None),
    ],
)
def test_bad_filters_show_an_error_not_a_crash(carol_client, trail, query, field):
    response = carol_client.get("/audit/", query)
    if field is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert field in response.context["form"].errors
    page = response.content.decode()
    assert 'class="field-error"' in page
    if field == "item":
        assert "Enter an item&#x27;s uid" in page
    assert carol_client.get("/audit/export.csv", query).status_code == 400


def test_html_in_a_reason_is_escaped(carol_client, trail):
    audit_record(action=Action.CONFLICT, item=trail["first"], reason="<script>alert(1)</script>")
    page = carol_client.get("/audit/").content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_filters_survive_paging(carol_client, carol):
    for n in range(55):
        audit_record(action=Action.CLAIM, actor=carol, new=f"claim {n}")
    audit_record(action=Action.PURGE, new="gone")
    page = carol_client.get("/audit/", {"action": "claim"}).content.decode()
    assert "Page 1 of 2 · 55 rows" in page
    assert 'href="?action=claim&amp;page=2"' in page
    assert 'href="/audit/export.csv?action=claim"' in page
    second = carol_client.get("/audit/", {"action": "claim", "page": 2})
    assert len(shown(second)) == 5


def test_the_list_runs_as_many_queries_for_60_rows(
    carol_client, alice, bob, django_assert_max_num_queries
):
    version = make_version("v1")
    for n in range(60):
        item = make_item(external_id=f"q{n}")
        actor = (alice, bob, None)[n % 3]
        audit_record(action=Action.LABEL, actor=actor, item=item, model_version=version, new="R")
    # session, user, the admin check (the decorator's, the nav's two), the form's users,
    # count, page: none per row.
    with django_assert_max_num_queries(8):
        response = carol_client.get("/audit/")
    assert len(shown(response)) == 50


def test_the_item_history_lists_its_own_audit_rows(carol_client, trail):
    page = carol_client.get(f"/review/items/{trail['second'].uid}/").content.decode()
    assert "Audit trail" in page
    assert "nudity in the background" in page
    assert f'href="/audit/?item={trail["second"].uid}"' in page
    rows = page.split('id="audit"')[1]
    assert "bob" in rows and "PG" in rows
    assert "alice" not in rows  # alice labelled the other item


def test_a_moderator_sees_the_item_audit_rows_without_the_admin_link(client, alice, trail):
    client.force_login(alice)
    page = client.get(f"/review/items/{trail['first'].uid}/").content.decode()
    rows = page.split('id="audit"')[1]
    assert "alice" in rows
    assert "/audit/?item=" not in page
