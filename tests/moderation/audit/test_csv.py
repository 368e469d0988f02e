"""The audit trail's CSV export: the page's filters, streamed, and faithful to the text."""

from __future__ import annotations

import csv
import io

from moderation.audit.services import Action, audit_record
from moderation.audit.views import CSV_HEADER
from tests.moderation.factories import make_item

AWKWARD = 'Looked again, "twice": nudity,\nlate at night — <script>alert("x")</script> ✓'


def rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-trail.csv"'
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_the_export_has_a_header_and_the_filtered_rows(carol_client, alice, carol):
    item = make_item(source="civitai", external_id="777")
    audit_record(action=Action.LABEL, actor=alice, item=item, new="R", label_id=5)
    audit_record(action=Action.OVERRIDE, actor=carol, item=item, old="R", new="X", reason="why")
    audit_record(action=Action.PURGE, new="gone")

    data = rows(carol_client.get("/audit/export.csv", {"item": item.uid}))

    assert data[0] == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in data[1:]]
    assert [r["action"] for r in body] == ["override", "label"]
    assert body[0]["actor"] == "carol" and body[0]["old"] == "R" and body[0]["new"] == "X"
    assert body[1]["item_uid"] == str(item.uid) and body[1]["item_external_id"] == "777"
    assert body[1]["detail"] == '{"label_id": 5}'


def test_a_reason_with_commas_quotes_newlines_and_markup_round_trips(carol_client):
    audit_record(action=Action.CONFLICT, reason=AWKWARD)
    data = rows(carol_client.get("/audit/export.csv"))
    assert len(data) == 2
    assert data[1][CSV_HEADER.index("actor")] == "system"
    assert data[1][CSV_HEADER.index("reason")] == AWKWARD


def test_an_empty_trail_exports_the_header_alone(carol_client):
    assert rows(carol_client.get("/audit/export.csv", {"action": "purge"})) == [CSV_HEADER]
