"""History the database itself protects (issue 13): decisions, labels, predictions and audit
rows refuse UPDATE and DELETE whoever sends them, and a pending decision changes nothing a
reader of the current label sees."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.deletion import ProtectedError

from moderation.audit.models import AuditEvent
from moderation.dashboards.live import live_report
from moderation.inference.models import ModelVersion, Prediction
from moderation.review.decisions import decision_record, label_create
from moderation.review.labels import current_labels, label_get_current
from moderation.review.models import Decision, Label
from moderation.training import selectors as training

from .conftest import make_item, make_prediction

TABLES = {
    "review_label": "level = 16",
    "review_decision": "level = 16",
    "inference_prediction": "suggested_rating = 16",
    "audit_auditevent": "reason = 'rewritten'",
}


@pytest.fixture
def history(alice, champion):
    item = make_item()
    make_prediction(item, champion)
    label_create(item=item, level=2, moderator=alice)
    return item


def refused(sql: str) -> str:
    """The database's message for a statement it refuses (the test fails if it runs)."""
    with pytest.raises(IntegrityError) as error, transaction.atomic(), connection.cursor() as c:
        c.execute(sql)
    return str(error.value)


@pytest.mark.parametrize("table", TABLES)
def test_raw_sql_update_and_delete_of_history_are_refused_by_the_database(history, table):
    assert "append-only: UPDATE refused" in refused(f"UPDATE {table} SET {TABLES[table]}")
    assert "append-only: DELETE refused" in refused(f"DELETE FROM {table}")


def test_queryset_update_and_delete_of_labels_are_refused(history):
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.update(level=16)
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.all().delete()
    assert list(Label.objects.values_list("level", flat=True)) == [2]


def test_an_item_with_history_cannot_be_deleted(history):
    with pytest.raises(ProtectedError):
        history.delete()
    assert Label.objects.filter(item=history).exists()


def test_a_pending_decision_changes_nothing_any_reader_sees(history, bob, client):
    train_rows = list(training.training_items().values_list("pk", "current_level"))
    fingerprint = training.labels_fingerprint(list(training.training_items()))
    current = label_get_current(item=history)
    client.force_login(bob)
    api_before = _api_current_label(history)
    live_before = live_report(ModelVersion.objects.get(status="champion"))
    assert live_before is not None and live_before["n"] == 1

    pending = decision_record(
        item=history, level=16, moderator=bob, path="admin", final=False, origin="moderator"
    )

    assert pending.status == Decision.Status.PENDING and not pending.labels.exists()
    assert label_get_current(item=history) == current
    assert list(current_labels().values_list("pk", flat=True)) == [current.pk]
    assert list(training.training_items().values_list("pk", "current_level")) == train_rows
    assert training.labels_fingerprint(list(training.training_items())) == fingerprint
    assert _api_current_label(history) == api_before
    assert live_report(ModelVersion.objects.get(status="champion")) == live_before
    assert not AuditEvent.objects.filter(action="label", new="XXX").exists()
    assert Prediction.objects.count() == 1


def _api_current_label(item) -> dict:
    from moderation.media.selectors import item_get
    from moderation.media.serializers import item_data

    return item_data(item_get(uid=item.uid))["current_label"]
