"""Two label-error passes at once (a second click, beat beside a click) ask about a label once:
the database's one-open-task-per-item rule picks the first, and the second pass goes on."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from moderation.review.labels import label_get_current
from moderation.review.models import ReviewTask
from moderation.review.task_claims import second_look_open
from moderation.review.workflow import decision_submit
from tests.moderation.review.conftest import make_item


@pytest.mark.django_db(transaction=True)
def test_a_second_look_opened_by_two_passes_at_once_is_opened_once(alice):
    item = make_item(queued=False)
    decision_submit(
        item=item, level=2, moderator=alice, saw_label=None, correction=True, reason="x"
    )
    label = label_get_current(item=item)
    first_opened, outcome = threading.Event(), {}

    def second_pass() -> None:
        first_opened.wait(10)
        try:  # the first pass's task is not committed yet: this one's check cannot see it
            outcome["task"] = second_look_open(label=label, reason="likely", priority=1)
        except Exception as error:  # the failure this test is about
            outcome["error"] = error
        finally:
            connection.close()

    racer = threading.Thread(target=second_pass)
    racer.start()
    with transaction.atomic():
        assert second_look_open(label=label, reason="likely", priority=1) is not None
        first_opened.set()
        time.sleep(1.0)  # the second pass now waits on the unique index for this commit
    racer.join(20)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["task"] is None
    assert ReviewTask.objects.filter(item=item, kind=ReviewTask.Kind.SECOND_LOOK).count() == 1
