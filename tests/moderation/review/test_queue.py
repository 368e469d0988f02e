from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from moderation.review.claims import item_claim_next
from moderation.review.models import ReviewState
from moderation.review.queue import down_class_risk

from .conftest import make_item, make_prediction


def test_risk_is_zero_when_every_model_agrees_and_the_mlp_is_sure():
    risk = down_class_risk(suggested_level=2, mlp_probs=[0, 1, 0, 0, 0], expert_levels=[2, 2, None])
    assert risk == 0


def test_risk_counts_the_mlp_mass_above_the_suggestion():
    risk = down_class_risk(
        suggested_level=2, mlp_probs=[0.1, 0.5, 0.3, 0.1, 0.0], expert_levels=[2]
    )
    assert risk == pytest.approx(0.4)


def test_an_expert_rating_higher_than_the_suggestion_adds_a_quarter_per_level():
    risk = down_class_risk(suggested_level=2, mlp_probs=[0, 1, 0, 0, 0], expert_levels=[16, 1])
    assert risk == pytest.approx(0.75)


def test_an_expert_rating_lower_adds_no_risk():
    risk = down_class_risk(suggested_level=8, mlp_probs=[0, 0, 0, 1, 0], expert_levels=[1, 2])
    assert risk == 0


def test_a_blocked_level_tag_flag_adds_one():
    calm = {"suggested_level": 16, "mlp_probs": [0, 0, 0, 0, 1], "expert_levels": [16]}
    assert down_class_risk(**calm, flagged=True) == down_class_risk(**calm) + 1


def test_claims_follow_risk_then_age(alice, champion):
    calm_old = make_item()
    unpredicted = make_item()
    risky = make_item()
    calm_new = make_item()
    make_prediction(calm_old, champion, experts={"lstm": 2}, voter=2, mlp=2)
    make_prediction(risky, champion, experts={"lstm": 16}, voter=2, mlp=2)
    make_prediction(calm_new, champion, experts={"lstm": 2}, voter=2, mlp=2)
    # Give the calm items the same risk, so only their age separates them.
    ReviewState.objects.filter(item__in=[calm_old, calm_new]).update(priority=0.1)

    order = []
    while (item := item_claim_next(moderator=alice)) is not None:
        order.append(item)
        ReviewState.objects.filter(item=item).update(state=ReviewState.State.DONE)

    assert order == [risky, calm_old, calm_new, unpredicted]


def test_a_moderator_gets_back_the_item_they_hold(alice):
    first = make_item()
    make_item()
    assert item_claim_next(moderator=alice) == first
    assert item_claim_next(moderator=alice) == first


def test_two_moderators_never_get_the_same_item(alice, bob):
    make_item()
    make_item()
    alices = item_claim_next(moderator=alice)
    bobs = item_claim_next(moderator=bob)
    assert alices is not None and bobs is not None
    assert alices != bobs


def test_an_item_held_by_alice_is_not_given_to_bob(alice, bob):
    make_item()
    assert item_claim_next(moderator=alice) is not None
    assert item_claim_next(moderator=bob) is None


def test_an_expired_claim_returns_to_the_queue(alice, bob):
    item = make_item()
    assert item_claim_next(moderator=alice) == item
    ReviewState.objects.filter(item=item).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert item_claim_next(moderator=bob) == item
    state = ReviewState.objects.get(item=item)
    assert state.claimed_by == bob


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_claim_on_its_own_skips_the_commit_flush_but_never_inside_a_callers_transaction(
    alice, bob, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    settings.GOLD_SHARE = 0  # a gold draw (random) would add its query
    first, second = make_item(), make_item()
    before = _synchronous_commit()

    with CaptureQueriesContext(connection) as alone:
        assert item_claim_next(moderator=alice) == first
    assert "SET LOCAL synchronous_commit TO OFF" in [q["sql"] for q in alone.captured_queries]
    assert _synchronous_commit() == before  # LOCAL: it ended with the claim's transaction
    # The claim reads its item with the row it locks, not in a query of its own; its audit
    # row commits with it. Before it: the held task, the held item, the kinds of open tasks.
    statements = [q["sql"].split()[0] for q in alone.captured_queries]
    assert statements == [
        *["SELECT"] * 3,
        *["BEGIN", "SET", "SELECT", "UPDATE", "INSERT", "COMMIT"],
    ]

    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        assert item_claim_next(moderator=bob) == second
        assert _synchronous_commit() == before
    assert not any(q["sql"].startswith("SET") for q in inside.captured_queries)
