"""The model audit's pages: who may open them, what a bad request gets, what a decision on an
audit writes, and the CSV downloads."""

from __future__ import annotations

import csv
import io

import pytest

from moderation.audit.models import AuditEvent
from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import audit_next, audit_session_start
from moderation.review.labels import label_get_current
from moderation.review.models import Decision, ReviewTask

from .conftest import audit_all, make_version, rated

TRIGGERED = AuditSession.Mode.TRIGGERED
PAGES = ["/model-audit/", "/model-audit/audit/", "/model-audit/figures/"]
PAGES += ["/model-audit/figures/counts.csv", "/model-audit/figures/items.csv"]


@pytest.mark.parametrize("url", PAGES)
def test_a_moderator_gets_403_and_an_admin_the_page(url, client, alice, carol):
    client.force_login(alice)
    assert client.get(url).status_code == 403
    client.force_login(carol)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/model-audit/start/", "/model-audit/claim/"])
def test_a_moderator_cannot_start_or_claim(url, client, alice, champion):
    rated(champion, suggested=4)
    client.force_login(alice)
    assert client.post(url, {"mode": TRIGGERED, "size": 5, "days": 7}).status_code == 403
    assert ReviewTask.objects.count() == 0


def test_an_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get("/model-audit/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_navigation_links_the_audit_for_admins_only(client, alice, carol):
    client.force_login(carol)
    assert 'href="/model-audit/"' in client.get("/model-audit/figures/").content.decode()
    client.force_login(alice)
    assert 'href="/model-audit/"' not in client.get("/review/mine/").content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "everything", "size": 5, "days": 7},
        {"mode": TRIGGERED, "size": "many", "days": 7},
        {"mode": TRIGGERED, "size": 0, "days": 7},
        {"mode": TRIGGERED, "size": 5, "days": -1},
        {"mode": TRIGGERED, "size": 5, "days": 7, "margin": "2"},
        {},
    ],
)
def test_a_bad_start_is_400_and_opens_nothing(data, carol_client, champion):
    rated(champion, suggested=4)
    response = carol_client.post("/model-audit/start/", data)
    assert response.status_code == 400
    assert ReviewTask.objects.count() == 0


@pytest.mark.parametrize(
    "query",
    ["?session=abc", "?session=99999", "?mode=sideways", "?session=1%27%3B--"],
)
@pytest.mark.parametrize("page", ["", "counts.csv", "items.csv"])
def test_a_bad_figures_query_is_400(query, page, carol_client):
    assert carol_client.get(f"/model-audit/figures/{page}{query}").status_code == 400


def test_starting_with_nothing_to_audit_says_so(carol_client, champion):
    response = carol_client.post(
        "/model-audit/start/", {"mode": TRIGGERED, "size": 5, "days": 7}, follow=True
    )
    assert "fits a triggered audit" in response.content.decode()


def test_a_get_changes_nothing_and_the_claim_is_a_post(carol, carol_client, champion):
    prediction = rated(champion, suggested=8, prompt="a tiger <script>alert(1)</script>")
    response = carol_client.post("/model-audit/start/", {"mode": TRIGGERED, "size": 5, "days": 7})
    assert response.status_code == 302 and response["Location"] == "/model-audit/audit/"
    page = carol_client.get("/model-audit/audit/").content.decode()
    assert 'hx-post="/model-audit/claim/"' in page
    assert ReviewTask.objects.get().state == "open"
    page = carol_client.post("/model-audit/claim/").content.decode()
    assert ReviewTask.objects.get().state == "claimed"
    assert f'data-item="{prediction.item.uid}"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'data-hotkey="3"' in page and 'data-hotkey="b"' in page
    # Blind: the model's suggestion is not on the page.
    assert "Suggested rating" not in page
    assert "is-suggested" not in page  # no button marks the suggestion either


def test_a_decision_on_an_audit_writes_a_final_label_by_path_audit(carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    task = audit_next(admin=carol)
    response = carol_client.post(f"/model-audit/items/{prediction.item.uid}/decide/", {"level": 2})
    assert response.status_code == 302
    decision = Decision.objects.get(item=prediction.item)
    assert (decision.path, decision.status, decision.level) == ("audit", "final", 2)
    label = label_get_current(item=prediction.item)
    assert (label.level, label.decision, label.moderator) == (2, decision, carol)
    task.refresh_from_db()
    assert (task.state, task.outcome, task.closed_by) == ("done", "audited", decision)
    assert AuditEvent.objects.filter(item=prediction.item, action="label", new="PG13").exists()
    assert AuditEvent.objects.filter(item=prediction.item, new="model audit: audited").exists()


def test_the_audit_decision_supersedes_a_moderators_label(carol, alice, champion):
    from moderation.review.decisions import decision_record

    prediction = rated(champion, suggested=8)
    first = decision_record(item=prediction.item, level=8, moderator=None, path="admin")
    audit_all(carol, {prediction.item_id: 4})
    label = label_get_current(item=prediction.item)
    assert (label.level, label.supersedes.decision) == (4, first)


def test_blocked_without_a_reason_is_refused_and_the_item_stays_held(carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    audit_next(admin=carol)
    url = f"/model-audit/items/{prediction.item.uid}/decide/"
    response = carol_client.post(url, {"level": 32}, HTTP_HX_REQUEST="true")
    assert "say why the item is blocked" in response.content.decode()
    assert Decision.objects.count() == 0
    assert ReviewTask.objects.get().state == "claimed"


@pytest.mark.parametrize("level", ["7", "ZZ", ""])
def test_a_bad_level_is_400_and_writes_nothing(level, carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    audit_next(admin=carol)
    url = f"/model-audit/items/{prediction.item.uid}/decide/"
    assert carol_client.post(url, {"level": level}).status_code == 400
    assert Decision.objects.count() == 0


def test_deciding_an_item_not_held_writes_nothing(carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)  # open, not claimed
    carol_client.post(f"/model-audit/items/{prediction.item.uid}/decide/", {"level": 8})
    assert Decision.objects.count() == 0


def read_csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_items_csv_has_a_row_per_audited_item(carol, carol_client, champion):
    prediction = rated(champion, suggested=8, experts={"tag_rules": 8, "lstm": None})
    session = audit_all(carol, {prediction.item_id: 4})
    rows = read_csv(carol_client.get(f"/model-audit/figures/items.csv?session={session.pk}"))
    assert rows[0] == [
        "item", "session", "mode", "version", "auditor", "truth",
        "suggested", "voter", "mlp", "expert:lstm", "expert:tag_rules",
    ]  # fmt: skip
    assert rows[1] == [
        str(prediction.item.uid), str(session.pk), "triggered", "v1", "carol", "R",
        "X", "X", "X", "abstained", "X",
    ]  # fmt: skip


def test_the_counts_csv_matches_the_figures(carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_all(carol, {prediction.item_id: 4})
    rows = read_csv(carol_client.get("/model-audit/figures/counts.csv"))
    header, suggested_r = rows[0], rows[1]
    assert header[:8] == ["model", "kind", "level", "tp", "fp", "tn", "fn", "abstained"]
    assert suggested_r[:8] == ["suggested", "combiner", "R", "1", "0", "0", "0", "0"]
    assert rows[2][:8] == ["suggested", "combiner", "X", "0", "1", "0", "0", "0"]
    assert suggested_r[8] == "1.0" and suggested_r[11] == "1.0"


def test_csv_cells_that_would_run_as_formulas_are_defused(carol, carol_client):
    champion = make_version('=HYPERLINK("http://x")')
    prediction = rated(champion, suggested=8, experts={"=cmd|' /C calc'!A0": 8})
    audit_all(carol, {prediction.item_id: 8})
    items = read_csv(carol_client.get("/model-audit/figures/items.csv"))
    assert items[1][3] == '\'=HYPERLINK("http://x")'
    counts = read_csv(carol_client.get("/model-audit/figures/counts.csv"))
    assert "'=cmd|' /C calc'!A0" in [row[0] for row in counts]
    assert not any(row[0].startswith("=") for row in counts)


def test_the_figures_page_escapes_expert_names(carol, carol_client):
    champion = make_version()
    prediction = rated(champion, suggested=8, experts={"<b>bold</b>": 8})
    audit_all(carol, {prediction.item_id: 8})
    page = carol_client.get("/model-audit/figures/").content.decode()
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_a_label_written_after_the_page_showed_it_is_a_conflict(carol, carol_client, champion):
    from moderation.review.decisions import decision_record

    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    page = carol_client.post("/model-audit/claim/").content.decode()
    assert 'name="seen" value=""' in page
    newer = decision_record(item=prediction.item, level=16, moderator=None, path="admin")
    url = f"/model-audit/items/{prediction.item.uid}/decide/"
    response = carol_client.post(url, {"level": 4, "seen": ""}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "after you opened it" in page
    assert Decision.objects.filter(path="audit").count() == 0
    assert ReviewTask.objects.get().state == "claimed"
    label = label_get_current(item=prediction.item)
    assert label.decision == newer and f'name="seen" value="{label.pk}"' in page
    # Rated again with the newer label in view: a deliberate replacement.
    carol_client.post(url, {"level": 4, "seen": label.pk})
    assert label_get_current(item=prediction.item).level == 4
    assert ReviewTask.objects.get().outcome == "audited"


def test_a_seen_label_that_does_not_exist_is_400(carol, carol_client, champion):
    prediction = rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    audit_next(admin=carol)
    url = f"/model-audit/items/{prediction.item.uid}/decide/"
    assert carol_client.post(url, {"level": 4, "seen": "abc"}).status_code == 400
    assert carol_client.post(url, {"level": 4, "seen": "99999"}).status_code == 400
    assert Decision.objects.count() == 0
