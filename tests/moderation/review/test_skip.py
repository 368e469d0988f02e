from moderation.review.claims import item_claim_next, item_skip
from moderation.review.models import ReviewState

from .conftest import make_item


def test_a_skipped_item_does_not_come_back_to_alice(alice):
    item = make_item()
    assert item_claim_next(moderator=alice) == item
    item_skip(item=item, moderator=alice)
    assert item_claim_next(moderator=alice) is None


def test_a_skipped_item_goes_to_bob(alice, bob):
    item = make_item()
    item_claim_next(moderator=alice)
    item_skip(item=item, moderator=alice)
    assert ReviewState.objects.get(item=item).state == ReviewState.State.QUEUED
    assert item_claim_next(moderator=bob) == item


def test_skipping_through_the_page_shows_the_next_item(alice_client, alice):
    first, second = make_item(), make_item()
    alice_client.post("/review/claim/", follow=True)
    response = alice_client.post(f"/review/{first.uid}/skip/", headers={"HX-Request": "true"})
    assert response.context["item"] == second
