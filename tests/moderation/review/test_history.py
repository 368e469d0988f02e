from moderation.review.decisions import label_create

from .conftest import make_item, make_prediction, make_version


def test_history_shows_each_versions_prediction_and_every_label(alice_client, alice, bob):
    item = make_item()
    old = make_version("v1", status="retired")
    new = make_version("v2")
    make_prediction(item, old, experts={"lstm": 1, "image": None}, voter=1, mlp=1)
    make_prediction(item, new, experts={"lstm": 8, "image": None}, voter=8, mlp=4)
    label_create(item=item, level=4, moderator=bob)
    label_create(item=item, level=8, moderator=alice)

    page = alice_client.get(f"/review/items/{item.uid}/").content.decode()

    assert "v1 · retired" in page and "v2 · champion" in page
    assert page.count(">abstained<") == 2
    assert "alice" in page and "bob" in page
    assert "current" in page
    # alice's label says what it superseded: bob's R.
    assert "</span> by bob," in page
