import pytest

from moderation.review.decisions import label_create
from moderation.review.models import Label, ReviewState

from .conftest import make_item, make_prediction


def test_deciding_records_a_label_and_closes_the_review(alice_client, alice, champion):
    item = make_item()
    make_prediction(item, champion, voter=2, mlp=4)
    alice_client.post("/review/claim/", follow=True)

    response = alice_client.post(f"/review/{item.uid}/decide/", {"level": "4"})

    assert response.status_code == 302 and response.url == "/review/"
    label = Label.objects.get(item=item)
    assert (label.level, label.moderator, label.supersedes) == (4, alice, None)
    assert (label.agreed_with_voter, label.agreed_with_mlp) == (False, True)
    assert ReviewState.objects.get(item=item).state == ReviewState.State.DONE


def test_undo_reopens_the_previous_item_and_a_new_decision_supersedes(alice_client, alice):
    first, second = make_item(), make_item()
    alice_client.post("/review/claim/", follow=True)
    alice_client.post(f"/review/{first.uid}/decide/", {"level": "2"})
    alice_client.post("/review/claim/", follow=True)  # alice now holds the second item

    response = alice_client.post(
        "/review/undo/", {"current": str(second.uid)}, headers={"HX-Request": "true"}
    )
    assert response.context["item"] == first
    seen = response.context["current_label"]
    assert f'name="seen" value="{seen.pk}"' in response.content.decode()
    alice_client.post(f"/review/{first.uid}/decide/", {"level": "8", "seen": seen.pk})

    old, new = Label.objects.filter(item=first).order_by("created_at", "pk")
    assert (old.level, new.level) == (2, 8)
    assert new.supersedes == old
    assert old.superseded_by == new
    # The item alice was looking at went back to the queue, and comes next.
    assert ReviewState.objects.get(item=second).claimed_by is None
    assert alice_client.post("/review/claim/", follow=True).context["item"] == second


def test_labels_are_never_updated_in_place(alice):
    label = label_create(item=make_item(), level=2, moderator=alice)
    label.level = 16
    with pytest.raises(ValueError, match="append-only"):
        label.save()
    assert Label.objects.get(pk=label.pk).level == 2


def test_undo_with_nothing_decided_says_so(alice_client):
    make_item()
    response = alice_client.post("/review/undo/", headers={"HX-Request": "true"})
    assert b"Nothing to undo" in response.content


def test_blocked_is_recorded_as_level_32(alice_client, alice):
    item = make_item()
    alice_client.post("/review/claim/", follow=True)
    alice_client.post(f"/review/{item.uid}/decide/", {"level": "32", "reason": "gore"})
    assert Label.objects.get(item=item).is_blocked


def test_a_level_that_is_no_rating_records_nothing(alice_client):
    item = make_item()
    alice_client.post("/review/claim/", follow=True)
    response = alice_client.post(f"/review/{item.uid}/decide/", {"level": "3"}, follow=True)
    assert not Label.objects.exists()
    assert b"Not recorded" in response.content


def test_bob_cannot_decide_an_item_alice_holds(alice, bob, client):
    item = make_item()
    client.force_login(alice)
    client.post("/review/claim/", follow=True)
    client.force_login(bob)
    client.post(f"/review/{item.uid}/decide/", {"level": "1"})
    assert not Label.objects.exists()
