"""`u` after `s` (issue 18): undo goes back to the item just skipped, claimed again by the
rules of any claim; after a decision it reopens that decision, as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.review.claims import item_claim_next
from moderation.review.decisions import label_create
from moderation.review.gold import gold_mark
from moderation.review.models import Label, ReviewState, ReviewTask
from moderation.review.task_claims import second_look_open

from .conftest import make_item

HTMX = {"HX-Request": "true"}
State = ReviewState.State


@pytest.fixture(autouse=True)
def _no_gold_draw(settings):
    settings.GOLD_SHARE = 0.0


def claim(client: Client):
    return client.post("/review/claim/", headers=HTMX).context["item"]


def skip(client: Client, item):
    return client.post(f"/review/{item.uid}/skip/", headers=HTMX).context["item"]


def undo(client: Client, current=None):
    data = {} if current is None else {"current": str(current.uid)}
    return client.post("/review/undo/", data, headers=HTMX)


def decide(client: Client, item, level: str = "2"):
    return client.post(f"/review/{item.uid}/decide/", {"level": level}, headers=HTMX)


def state_of(item) -> ReviewState:
    return ReviewState.objects.select_related("claimed_by").get(item=item)


def test_u_after_s_returns_to_the_skipped_item(alice_client, alice):
    first, second = make_item(), make_item()
    assert claim(alice_client) == first
    assert skip(alice_client, first) == second

    response = undo(alice_client, current=second)

    assert response.context["item"] == first
    assert "Back to the item you skipped" in response.content.decode()
    assert (state_of(first).state, state_of(first).claimed_by) == (State.CLAIMED, alice)
    # The item she was looking at went back to the queue for everyone.
    assert (state_of(second).state, state_of(second).claimed_by) == (State.QUEUED, None)
    assert AuditEvent.objects.filter(item=first, new="claimed by alice (skip undone)").exists()


def test_the_skip_ends_when_it_is_undone(alice_client, alice):
    first, second = make_item(), make_item()
    claim(alice_client)
    skip(alice_client, first)
    undo(alice_client, current=second)

    # Her claim runs out: the item comes back to her like any other, not kept away by the skip.
    ReviewState.objects.filter(item=first).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert item_claim_next(moderator=alice) == first


def test_u_after_a_decision_still_reopens_that_decision(alice_client, alice):
    first, second, third = make_item(), make_item(), make_item()
    claim(alice_client)
    skip(alice_client, first)
    decide(alice_client, second)  # a decision after the skip: `u` is about it now

    response = undo(alice_client, current=third)

    assert response.context["item"] == second
    assert "Reopened your previous item" in response.content.decode()
    assert state_of(first).state == State.QUEUED


def test_u_walks_back_through_several_skips_then_to_the_last_decision(alice_client):
    decided, first, second, third = make_item(), make_item(), make_item(), make_item()
    claim(alice_client)
    decide(alice_client, decided)
    skip(alice_client, first)
    skip(alice_client, second)

    assert undo(alice_client, current=third).context["item"] == second
    assert undo(alice_client, current=second).context["item"] == first
    assert undo(alice_client, current=first).context["item"] == decided


def test_u_after_skipping_the_last_item_brings_it_back_to_the_empty_page(alice_client, alice):
    only = make_item()
    claim(alice_client)
    assert skip(alice_client, only) is None  # the queue is empty for her

    assert undo(alice_client).context["item"] == only
    assert state_of(only).claimed_by == alice


def test_u_after_s_is_refused_while_bob_holds_the_skipped_item(alice_client, alice, bob):
    first, second = make_item(), make_item()
    claim(alice_client)
    skip(alice_client, first)
    assert item_claim_next(moderator=bob) == first

    response = undo(alice_client, current=second)

    assert response.context["item"] == second  # she keeps what she held
    assert "Cannot go back to the item you skipped: bob holds it now." in (
        response.content.decode()
    )
    assert (state_of(first).claimed_by, state_of(second).claimed_by) == (bob, alice)
    # That skip is spent: the next `u` goes further back (here: nothing decided yet).
    assert "Nothing to undo" in undo(alice_client, current=second).content.decode()


def test_u_after_s_takes_over_bobs_expired_claim(alice_client, alice, bob):
    first, second = make_item(), make_item()
    claim(alice_client)
    skip(alice_client, first)
    item_claim_next(moderator=bob)
    ReviewState.objects.filter(item=first).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )

    assert undo(alice_client, current=second).context["item"] == first
    assert state_of(first).claimed_by == alice
    assert AuditEvent.objects.filter(item=first, old="claimed by bob (expired)").exists()


def test_u_after_s_is_refused_once_bob_has_decided_the_item(alice_client, alice, bob):
    first, second = make_item(), make_item()
    claim(alice_client)
    skip(alice_client, first)
    bob_client = Client()
    bob_client.force_login(bob)
    assert claim(bob_client) == first
    decide(bob_client, first, "4")

    response = undo(alice_client, current=second)

    assert response.context["item"] == second
    assert "Cannot go back to the item you skipped: bob decided it since." in (
        response.content.decode()
    )
    assert Label.objects.get(item=first).moderator == bob


def test_u_after_s_takes_back_a_skipped_second_look(alice_client, alice, bob):
    item = make_item(queued=False)
    ReviewState.objects.create(item=item, state=State.DONE)
    label = label_create(item=item, level=2, moderator=bob)
    task = second_look_open(label=label, reason="a likely label error", priority=1.0)
    queued = make_item()
    assert claim(alice_client) == item
    assert skip(alice_client, item) == queued
    task.refresh_from_db()
    assert task.state == ReviewTask.State.OPEN

    response = undo(alice_client, current=queued)

    assert response.context["item"] == item
    assert response.context["task"] == task
    task.refresh_from_db()
    assert (task.state, task.claimed_by) == (ReviewTask.State.CLAIMED, alice)
    assert state_of(queued).claimed_by is None


def test_u_after_s_serves_a_skipped_gold_item_again_blind(alice_client, alice, carol, settings):
    settings.GOLD_SHARE = 1.0
    gold = make_item(queued=False)
    Label.objects.create(item=gold, level=8, origin="corpus")
    gold_mark(items=[gold], admin=carol)
    assert claim(alice_client) == gold
    assert skip(alice_client, gold) is None  # closed unscored; nothing else waits

    response = undo(alice_client)

    assert response.context["item"] == gold
    assert response.context["blind"] is True  # still looks like any other item
    task = ReviewTask.objects.get(item=gold, kind=ReviewTask.Kind.GOLD)
    assert (task.state, task.claimed_by, task.outcome) == (ReviewTask.State.CLAIMED, alice, "")
