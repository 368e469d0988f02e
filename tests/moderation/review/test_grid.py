"""Grid review (`review.grid`, `review.grid_views`): a page of queue items claimed at once,
decided in bulk, one decision per item on the grid path, or given back."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.review import grid
from moderation.review.claims import item_claim_next, item_get_held
from moderation.review.grid import (
    CONFIRM,
    GridFilters,
    grid_claim,
    grid_decide,
    grid_items_held,
    grid_release,
)
from moderation.review.models import Decision, GoldItem, Label, ReviewState, ReviewTask
from moderation.review.workflow import double_review_selected
from tests.moderation.people import make_user

from .conftest import make_item, make_prediction, make_version

PG, PG13, R, X, XXX = 1, 2, 4, 8, 16


def suggested(item, version, level: int, *, warned: bool = False):
    """A prediction suggesting `level`; `warned`: an expert rates it one step higher."""
    above = {PG: PG13, PG13: R, R: X, X: XXX, XXX: XXX}[level]
    experts = {"tag_rules": above if warned else level, "lstm": level}
    return make_prediction(item, version, experts=experts, voter=level, mlp=level)


def state_of(item) -> ReviewState:
    return ReviewState.objects.get(item=item)


def uids(items) -> set[str]:
    return {str(i.uid) for i in items}


def test_a_grid_page_claims_matching_items_riskiest_first_each_with_a_lease(alice, champion):
    low = make_item(source="civitai")
    high = make_item(source="civitai")
    other_source = make_item(source="corpus")
    other_rating = make_item(source="civitai")
    suggested(low, champion, R)
    suggested(high, champion, R, warned=True)  # the warning raises its risk
    suggested(other_source, champion, R)
    suggested(other_rating, champion, PG)

    items = grid_claim(moderator=alice, filters=GridFilters(suggested=R, source="civitai"))

    assert items == [high, low]
    for item in items:
        state = state_of(item)
        assert (state.state, state.claimed_by, state.grid) == ("claimed", alice, True)
        assert state.claimed_until > timezone.now() + timedelta(minutes=9)
    assert state_of(other_source).state == state_of(other_rating).state == "queued"
    claims = AuditEvent.objects.filter(action=AuditEvent.Action.CLAIM, actor=alice)
    assert sorted(claims.values_list("item_id", "old", "new")) == sorted(
        (i.pk, "queued", "claimed by alice (grid)") for i in items
    )


def test_tag_filters_need_every_included_tag_and_none_of_the_excluded(alice, champion):
    both = make_item(tags=[["cat", 0.9], ["Sofa", 0.8]])
    cat_only = make_item(tags=[["cat", 0.9]])
    with_dog = make_item(tags=[["cat", 0.9], ["sofa", 0.7], ["dog", 0.6]])
    untagged = make_item(tags=None)
    for item in (both, cat_only, with_dog, untagged):
        suggested(item, champion, PG13)

    include = GridFilters(tags_include=("cat", "sofa"))
    assert uids(grid_claim(moderator=alice, filters=include)) == uids([both, with_dog])
    exclude = GridFilters(tags_include=("cat",), tags_exclude=("DOG",))
    assert uids(grid_claim(moderator=alice, filters=exclude)) == uids([both, cat_only])
    assert uids(grid_claim(moderator=alice, filters=GridFilters(tags_exclude=("cat",)))) == uids(
        [untagged]
    )


def test_a_new_page_gives_back_the_previous_one_and_never_takes_anothers_items(
    alice, bob, champion
):
    items = [make_item() for _ in range(5)]
    for item in items:
        suggested(item, champion, PG)

    alices = grid_claim(moderator=alice, filters=GridFilters(), size=3)
    bobs = grid_claim(moderator=bob, filters=GridFilters(), size=3)

    assert len(alices) == 3 and len(bobs) == 2
    assert not uids(alices) & uids(bobs)
    # Neither the review page's held item nor its next claim is a grid item.
    assert item_get_held(moderator=alice) is None
    assert item_claim_next(moderator=bob) is None
    again = grid_claim(moderator=alice, filters=GridFilters(), size=3)
    assert uids(again) == uids(alices)  # given back first, then taken again: still the riskiest
    released = AuditEvent.objects.filter(actor=alice, new="queued (released)")
    assert released.count() == 3


def test_gold_task_and_double_review_items_never_appear_in_the_grid(alice, champion, settings):
    plain = make_item()
    gold = make_item()
    GoldItem.objects.create(item=gold, level=PG13)
    tasked = make_item()
    ReviewTask.objects.create(item=tasked, kind=ReviewTask.Kind.SECOND_LOOK)
    waiting = make_item()
    ReviewState.objects.filter(item=waiting).update(state="waiting")
    for item in (plain, gold, tasked, waiting):
        suggested(item, champion, PG13)

    assert grid_claim(moderator=alice, filters=GridFilters()) == [plain]
    settings.DOUBLE_REVIEW_SHARE = 1.0
    assert double_review_selected(plain)
    assert grid_claim(moderator=alice, filters=GridFilters()) == []


def test_confirm_records_each_suggestion_and_sends_warned_items_back_to_the_queue(alice, champion):
    fine = [make_item() for _ in range(3)]
    warned = make_item()
    bare = make_item()  # no prediction: nothing to confirm
    for item in fine:
        suggested(item, champion, R)
    suggested(warned, champion, PG13, warned=True)
    grid_claim(moderator=alice, filters=GridFilters())

    outcome = grid_decide(
        moderator=alice, uids=[str(i.uid) for i in [*fine, warned, bare]], action=CONFIRM
    )

    assert (outcome.decided, outcome.pending) == (3, 0)
    assert dict(outcome.skipped) == {
        str(warned.uid): "down-class warning: left for single review",
        str(bare.uid): "no suggestion",
    }
    decisions = Decision.objects.filter(path=Decision.Path.GRID)
    assert sorted(decisions.values_list("item_id", "level", "status")) == sorted(
        (i.pk, R, "final") for i in fine
    )
    assert all(state_of(i).state == "done" for i in fine)
    for item in (warned, bare):
        state = state_of(item)
        assert (state.state, state.claimed_by, state.grid) == ("queued", None, False)
    labelled = AuditEvent.objects.filter(action=AuditEvent.Action.LABEL)
    assert [e.detail["path"] for e in labelled] == ["grid"] * 3
    assert grid_items_held(moderator=alice) == []


def test_set_for_all_goes_through_the_big_downgrade_rule_item_by_item(alice, champion):
    explicit = make_item()
    mild = make_item()
    suggested(explicit, champion, XXX)
    suggested(mild, champion, PG13)
    grid_claim(moderator=alice, filters=GridFilters())

    outcome = grid_decide(moderator=alice, uids=[str(explicit.uid), str(mild.uid)], action=PG)

    assert (outcome.decided, outcome.pending, outcome.skipped) == (1, 1, [])
    pending = Decision.objects.get(item=explicit)
    assert (pending.path, pending.status, pending.level) == ("grid", "pending", PG)
    task = ReviewTask.objects.get(item=explicit)
    assert (task.kind, task.state, task.excluded) == ("confirmation", "open", alice)
    assert state_of(explicit).state == "waiting"
    assert not Label.objects.filter(item=explicit).exists()
    assert Label.objects.get(item=mild).level == PG


def test_items_not_on_the_moderators_page_are_left_out(alice, bob, champion):
    mine, theirs = make_item(), make_item()
    for item in (mine, theirs):
        suggested(item, champion, PG)
    grid_claim(moderator=alice, filters=GridFilters(), size=1)
    grid_claim(moderator=bob, filters=GridFilters(), size=1)
    held_by_bob = grid_items_held(moderator=bob)[0].item

    outcome = grid_decide(moderator=alice, uids=[str(held_by_bob.uid)], action=R)

    assert outcome.decided == 0
    assert outcome.skipped == [(str(held_by_bob.uid), "not on your grid page any more")]
    assert not Decision.objects.exists()


def test_release_and_an_expired_lease_return_the_items_to_the_queue(alice, bob, champion):
    items = [make_item() for _ in range(3)]
    for item in items:
        suggested(item, champion, PG)
    grid_claim(moderator=alice, filters=GridFilters())
    grid_decide(moderator=alice, uids=[str(items[0].uid)], action=CONFIRM)

    assert grid_release(moderator=alice) == 2
    assert [state_of(i).state for i in items] == ["done", "queued", "queued"]

    grid_claim(moderator=alice, filters=GridFilters())
    ReviewState.objects.filter(claimed_by=alice).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert grid_items_held(moderator=alice) == []
    assert uids(grid_claim(moderator=bob, filters=GridFilters())) == uids(items[1:])
    taken = AuditEvent.objects.filter(actor=bob, action=AuditEvent.Action.CLAIM)
    assert set(taken.values_list("old", flat=True)) == {"claimed by alice (expired)"}
    # alice's stale page decides nothing now.
    outcome = grid_decide(moderator=alice, uids=[str(items[1].uid)], action=CONFIRM)
    assert outcome.decided == 0 and Decision.objects.count() == 1


def test_an_item_taken_between_the_read_and_the_claim_is_passed_over(
    alice, bob, champion, monkeypatch
):
    items = [make_item() for _ in range(4)]
    for item in items:
        suggested(item, champion, PG)
    real = grid._claim_batch
    raced = []

    def racing(pks, moderator, until):
        if moderator == alice and not raced:  # bob wins alice's first candidate meanwhile
            raced.extend(real(pks[:1], bob, until))
        return real(pks, moderator, until)

    monkeypatch.setattr(grid, "_claim_batch", racing)
    got = grid_claim(moderator=alice, filters=GridFilters(), size=2)

    assert len(got) == 2 and items[0] not in got
    assert state_of(items[0]).claimed_by == bob


@pytest.mark.django_db(transaction=True)
def test_moderators_loading_pages_at_once_never_share_an_item():
    if connection.vendor != "postgresql":
        pytest.skip("threads share SQLite's in-memory test database (see test_concurrency.py)")
    champion = make_version("v1")
    people = [make_user(f"racer{n}", "moderators") for n in range(4)]
    for _ in range(30):
        suggested(make_item(), champion, PG)
    got: dict[str, list[str]] = {}
    start = threading.Barrier(len(people))

    def load(moderator) -> None:
        try:
            start.wait()
            got[moderator.username] = [
                str(i.uid) for i in grid_claim(moderator=moderator, filters=GridFilters(), size=10)
            ]
        finally:
            connection.close()

    threads = [threading.Thread(target=load, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [uid for page in got.values() for uid in page]
    assert len(claimed) == len(set(claimed)) == 30
    assert ReviewState.objects.filter(state="claimed", grid=True).count() == 30


# Views


def test_the_page_shows_the_held_items_and_a_get_changes_nothing(alice_client, alice, champion):
    item = make_item(prompt="a <b>bold</b> lighthouse at dusk")
    image_item = make_item(image=True)
    suggested(item, champion, PG13, warned=True)
    suggested(image_item, champion, PG13)
    page = alice_client.get(reverse("review:grid"))
    assert page.status_code == 200 and "You hold no grid page" in page.text
    assert not ReviewState.objects.filter(state="claimed").exists()

    response = alice_client.post(reverse("review:grid_claim"), {"suggested": PG13, "source": ""})
    assert response.status_code == 302
    page = alice_client.get(response["Location"])
    assert page.text.count("data-uid=") == 2
    assert "a &lt;b&gt;bold&lt;/b&gt; lighthouse" in page.text
    assert reverse("review:image", args=[image_item.uid]) in page.text
    assert "▼ down-class" in page.text
    assert 'aria-current="page">Grid</a>' in page.text


def test_a_bulk_decision_posts_and_redirects_with_what_it_did(alice_client, alice, champion):
    items = [make_item() for _ in range(2)]
    for item in items:
        suggested(item, champion, X)
    alice_client.post(reverse("review:grid_claim"), {})
    response = alice_client.post(
        reverse("review:grid_decide"),
        {"action": "confirm", "uid": [str(i.uid) for i in items], "back": "source=test"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("review:grid") + "?source=test"
    assert Decision.objects.filter(path="grid", level=X).count() == 2
    page = alice_client.get(response["Location"])
    assert "Recorded 2 decisions as suggested." in page.text


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("review:grid_decide", {"action": "confirm"}),
        ("review:grid_decide", {"action": "confirm", "uid": "not-a-uuid"}),
        ("review:grid_decide", {"action": "32", "uid": "00000000-0000-0000-0000-000000000000"}),
        ("review:grid_claim", {"suggested": "3"}),
        ("review:grid_claim", {"tags_include": ",".join(f"t{n}" for n in range(30))}),
        ("review:grid_claim", {"source": "bad\x00source"}),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(alice_client, url, data):
    item = make_item()
    response = alice_client.post(reverse(url), data)
    assert response.status_code == 400
    assert "message-error" in response.text
    assert state_of(item).state == "queued" and not Decision.objects.exists()


def test_bad_filters_on_the_page_are_a_400(alice_client):
    assert alice_client.get(reverse("review:grid"), {"suggested": "x"}).status_code == 400


def test_the_beacon_gives_the_page_back(alice_client, alice, champion):
    item = make_item()
    suggested(item, champion, PG)
    alice_client.post(reverse("review:grid_claim"), {})
    assert state_of(item).grid
    assert alice_client.post(reverse("review:grid_release"), {"beacon": "1"}).status_code == 204
    assert state_of(item).state == "queued"


def test_the_audit_trail_and_the_item_history_say_a_decision_came_from_the_grid(
    client, alice, carol, champion
):
    item = make_item()
    suggested(item, champion, PG)
    grid_claim(moderator=alice, filters=GridFilters())
    assert grid_decide(moderator=alice, uids=[str(item.uid)], action=CONFIRM).decided == 1

    client.force_login(alice)
    history = client.get(reverse("review:history", args=[item.uid])).content.decode()
    assert "by grid</span>" in history
    client.force_login(carol)
    trail = client.get(reverse("audit:events"), {"item": str(item.uid)}).content.decode()
    assert "by grid</span>" in trail


def test_items_left_out_for_a_warning_wait_for_single_review_not_the_next_page(alice, champion):
    warned, fine = make_item(), make_item()
    suggested(warned, champion, PG, warned=True)
    suggested(fine, champion, PG)
    grid_claim(moderator=alice, filters=GridFilters())
    grid_decide(moderator=alice, uids=[str(warned.uid), str(fine.uid)], action=CONFIRM)

    assert grid_claim(moderator=alice, filters=GridFilters()) == []
    assert item_claim_next(moderator=alice) == warned  # the review page still serves it
    why = AuditEvent.objects.filter(item=warned, action=AuditEvent.Action.CLAIM).values_list(
        "new", flat=True
    )
    assert "queued for single review" in list(why)
