"""Decisions are never overwritten (issue 13): late decisions are conflicts, a moderator decides
only what they hold, undo takes back only one's own current label, a GET claims nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.review.models import Decision, Label, ReviewState

from .conftest import make_item

HTMX = {"HX-Request": "true"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def claim(client: Client):
    response = client.post("/review/claim/", headers=HTMX)
    assert response.status_code == 200
    return response.context["item"]


def expire_claims() -> None:
    """Every claim runs out (the claim lasts CLAIM_MINUTES; waiting that long in a test would
    not be kind)."""
    ReviewState.objects.filter(state="claimed").update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )


def test_a_late_decision_after_an_expiry_is_a_conflict_and_overwrites_nothing(alice, bob):
    item = make_item()
    alice_page, bob_page = client_for(alice), client_for(bob)
    assert claim(alice_page) == item
    expire_claims()  # alice went for coffee
    assert claim(bob_page) == item
    bob_page.post(f"/review/{item.uid}/decide/", {"level": "8", "seen": ""}, headers=HTMX)

    # alice comes back and presses 1 on the page she opened before bob's decision
    response = alice_page.post(
        f"/review/{item.uid}/decide/", {"level": "1", "seen": ""}, headers=HTMX
    )

    assert [(label.level, label.moderator) for label in Label.objects.all()] == [(8, bob)]
    page = response.content.decode()
    assert "Not recorded" in page and "bob" in page and "X" in page
    assert response.context["newer"].moderator == bob
    assert not Decision.objects.filter(moderator=alice).exists()
    conflict = AuditEvent.objects.get(action="conflict")
    assert (conflict.actor, conflict.old, conflict.new) == (alice, "X", "PG (not recorded)")


def test_a_conflict_can_be_confirmed_as_a_correction_with_a_reason(alice, bob):
    item = make_item()
    alice_page, bob_page = client_for(alice), client_for(bob)
    claim(alice_page)
    expire_claims()
    claim(bob_page)
    bob_page.post(f"/review/{item.uid}/decide/", {"level": "8", "seen": ""}, headers=HTMX)
    bobs = Label.objects.get()
    alice_page.post(f"/review/{item.uid}/decide/", {"level": "1", "seen": ""}, headers=HTMX)

    correction = {"level": "1", "seen": bobs.pk, "correction": "on"}
    refused = alice_page.post(f"/review/{item.uid}/decide/", correction, headers=HTMX)
    assert "say why" in refused.content.decode()
    assert Label.objects.count() == 1

    correction["reason"] = "a cat in a bow tie: nothing explicit"
    alice_page.post(f"/review/{item.uid}/decide/", correction, headers=HTMX)

    current = Label.objects.exclude(pk=bobs.pk).get()
    assert (current.level, current.moderator, current.supersedes) == (1, alice, bobs)
    assert current.decision.path == "correction"
    override = AuditEvent.objects.get(action="override")
    assert (override.actor, override.old, override.new) == (alice, "X", "PG")
    assert override.reason == "a cat in a bow tie: nothing explicit"


def test_a_correction_waits_while_another_moderator_holds_the_item(alice, bob):
    item = make_item()
    alice_page = client_for(alice)
    claim(alice_page)
    alice_page.post(f"/review/{item.uid}/decide/", {"level": "2", "seen": ""}, headers=HTMX)
    label = Label.objects.get()
    ReviewState.objects.filter(item=item).update(
        state="claimed", claimed_by=bob, claimed_until=timezone.now() + timedelta(minutes=5)
    )
    form = {"level": "8", "seen": label.pk, "correction": "on", "reason": "nude"}
    response = alice_page.post(f"/review/{item.uid}/decide/", form, headers=HTMX)
    assert "bob holds this item now" in response.content.decode()
    assert Label.objects.count() == 1


def test_nobody_decides_an_item_they_do_not_hold(alice, bob):
    held, queued = make_item(), make_item()
    assert claim(client_for(alice)) == held
    bob_page = client_for(bob)
    form = {"level": "1", "seen": ""}
    response = bob_page.post(f"/review/{queued.uid}/decide/", form, headers=HTMX)
    assert "you do not hold this item" in response.content.decode()
    assert response.context["item"] == queued  # bob now takes it from the queue
    response = bob_page.post(f"/review/{held.uid}/decide/", form, headers=HTMX)
    assert "alice holds this item now" in response.content.decode()
    assert not Label.objects.exists() and not Decision.objects.exists()


def test_a_decision_missing_the_label_it_saw_is_a_conflict_not_an_overwrite(alice, bob):
    item = make_item()
    page = client_for(alice)
    claim(page)
    page.post(f"/review/{item.uid}/decide/", {"level": "2", "seen": ""}, headers=HTMX)
    ReviewState.objects.filter(item=item).update(
        state="claimed", claimed_by=alice, claimed_until=timezone.now() + timedelta(minutes=5)
    )
    # A form without `seen` (a stale page, a hand-made post) saw no label: the item has one.
    response = page.post(f"/review/{item.uid}/decide/", {"level": "16"}, headers=HTMX)
    assert response.context["newer"].level == 2
    assert Label.objects.count() == 1


def test_undo_is_refused_once_someone_else_relabelled_or_holds_the_item(alice, bob):
    first, second = make_item(), make_item()
    alice_page, bob_page = client_for(alice), client_for(bob)
    claim(alice_page)
    alice_page.post(f"/review/{first.uid}/decide/", {"level": "2", "seen": ""}, headers=HTMX)

    # bob holds alice's decided item (an admin reopened it for him, say)
    ReviewState.objects.filter(item=first).update(
        state="claimed", claimed_by=bob, claimed_until=timezone.now() + timedelta(minutes=5)
    )
    response = alice_page.post("/review/undo/", {"current": str(second.uid)}, headers=HTMX)
    assert "bob holds it now" in response.content.decode()
    assert ReviewState.objects.get(item=first).claimed_by == bob

    # bob relabels it
    seen = Label.objects.get(item=first).pk
    bob_page.post(f"/review/{first.uid}/decide/", {"level": "8", "seen": seen}, headers=HTMX)
    response = alice_page.post("/review/undo/", {"current": str(second.uid)}, headers=HTMX)
    assert "bob has relabelled it since your decision" in response.content.decode()
    assert ReviewState.objects.get(item=first).state == "done"
    assert Label.objects.filter(item=first).count() == 2


@pytest.mark.parametrize("htmx", [False, True])
def test_a_get_of_the_review_page_claims_nothing(alice, htmx):
    item = make_item()
    page = client_for(alice)
    response = page.get("/review/", headers=HTMX if htmx else {})
    assert response.status_code == 200
    assert 'hx-post="/review/claim/"' in response.content.decode()
    assert ReviewState.objects.get(item=item).state == "queued"
    assert not AuditEvent.objects.exists()

    assert claim(page) == item  # the page's POST after load
    state = ReviewState.objects.get(item=item)
    assert (state.state, state.claimed_by) == ("claimed", alice)
    # A reload shows the held item, still without a write.
    before = AuditEvent.objects.count()
    assert page.get("/review/").context["item"] == item
    assert AuditEvent.objects.count() == before


def test_blocked_needs_a_reason_and_keeps_it(alice):
    item = make_item()
    page = client_for(alice)
    claim(page)
    response = page.post(f"/review/{item.uid}/decide/", {"level": "32", "seen": ""}, headers=HTMX)
    assert "say why the item is blocked" in response.content.decode()
    assert response.context["item"] == item  # still in front of alice, still hers
    form = {"level": "32", "seen": "", "reason": "<b>gore</b>"}
    page.post(f"/review/{item.uid}/decide/", form, headers=HTMX)
    label = Label.objects.get()
    assert label.is_blocked and label.decision.reason == "<b>gore</b>"
    history = page.get(f"/review/items/{item.uid}/").content.decode()
    assert "&lt;b&gt;gore&lt;/b&gt;" in history and "<b>gore</b>" not in history


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"level": "3", "seen": ""}, "level"),
        ({"level": "2", "seen": "abc"}, "not a label id"),
        ({"level": "2", "seen": "999999"}, "not this item"),
        ({"level": "32", "seen": "", "reason": "bad\x07reason"}, "control characters"),
        ({"level": "2", "seen": "", "reason": "x" * 2001}, "at most 2000"),
        ({"level": "32", "seen": "", "reason": "bad\x00reason"}, "Null characters"),
    ],
)
def test_a_malformed_decision_is_refused_with_a_message(alice, form, error):
    item = make_item()
    page = client_for(alice)
    claim(page)
    response = page.post(f"/review/{item.uid}/decide/", form, headers=HTMX)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Decision.objects.exists() and not Label.objects.exists()


def test_every_step_writes_its_audit_row(alice):
    item = make_item()
    page = client_for(alice)
    claim(page)
    page.post(f"/review/{item.uid}/decide/", {"level": "4", "seen": ""}, headers=HTMX)
    rows = list(AuditEvent.objects.order_by("pk").values_list("action", "old", "new"))
    assert rows == [
        ("claim", "queued", "claimed by alice"),
        ("label", "—", "R"),
        ("review_state", "claimed by alice", "done"),
    ]
    assert AuditEvent.objects.filter(actor=alice).count() == 3
