"""Second decisions: the big-downgrade confirmation, blind double review, gold items and holds,
second looks and adjudication, through the services the review page calls."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from moderation.review.claims import item_claim_next, item_skip
from moderation.review.decisions import DecisionError
from moderation.review.gold import gold_mark, gold_results, hold_clear, hold_get_standing
from moderation.review.labels import label_get_current
from moderation.review.models import Decision, Label, ModeratorHold, ReviewState, ReviewTask
from moderation.review.task_claims import second_look_open, task_get_held
from moderation.review.workflow import decision_submit
from moderation.training.selectors import training_items
from tests.moderation.review.conftest import make_item, make_prediction

Kind = ReviewTask.Kind


def decide(moderator, level, *, item=None):
    """Claim the next item (or use the one given, held already) and decide it."""
    item = item or item_claim_next(moderator=moderator)
    assert item is not None, f"{moderator} got nothing to review"
    return item, decision_submit(
        item=item, level=level, moderator=moderator, saw_label=label_get_current(item=item)
    )


@pytest.fixture
def no_gold(settings):
    settings.GOLD_SHARE = 0.0


@pytest.mark.django_db
def test_a_big_downgrade_counts_for_nothing_until_a_second_moderator_confirms_it(
    alice, bob, champion, no_gold
):
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 16}, voter=16, mlp=16)

    _, submitted = decide(alice, 1)  # PG against a suggested XXX: four levels down

    assert submitted.decision.status == Decision.Status.PENDING
    assert "second moderator" in submitted.note
    assert label_get_current(item=item) is None
    assert item not in training_items()
    assert ReviewState.objects.get(item=item).state == ReviewState.State.WAITING
    task = ReviewTask.objects.get(item=item)
    assert (task.kind, task.excluded) == (Kind.CONFIRMATION, alice)
    assert item_claim_next(moderator=alice) is None  # never her own decision to confirm

    got, confirmed = decide(bob, 1)

    assert got == item and confirmed.decision.status == Decision.Status.FINAL
    label = label_get_current(item=item)
    assert (label.level, label.decision, label.moderator) == (1, confirmed.decision, bob)
    assert item in training_items()
    task.refresh_from_db()
    assert (task.state, task.outcome) == (ReviewTask.State.DONE, "agreed")


@pytest.mark.django_db
def test_a_confirmation_that_differs_goes_to_an_admin_whose_decision_is_the_label(
    alice, bob, carol, champion, no_gold
):
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 8}, voter=8, mlp=8)
    decide(alice, 2)  # PG13 against X: two levels down
    _, differs = decide(bob, 8)

    assert differs.decision.status == Decision.Status.PENDING
    assert label_get_current(item=item) is None
    adjudication = ReviewTask.objects.get(item=item, kind=Kind.ADJUDICATION)
    assert {adjudication.pending.moderator, adjudication.answer.moderator} == {alice, bob}
    with pytest.raises(DecisionError):  # nothing bob may take, and no moderator adjudicates
        assert item_claim_next(moderator=bob) is None
        adjudication.claimed_by, adjudication.state = bob, ReviewTask.State.CLAIMED
        adjudication.save()
        decision_submit(item=item, level=4, moderator=bob, saw_label=None)
    ReviewTask.objects.filter(pk=adjudication.pk).update(state="open", claimed_by=None)

    got, final = decide(carol, 4)

    assert got == item and final.decision.path == Decision.Path.ADJUDICATION
    assert label_get_current(item=item).level == 4


@pytest.mark.django_db
def test_an_admins_big_downgrade_is_final(carol, champion, no_gold):
    item = make_item()
    make_prediction(item, champion, experts={"tag_rules": 16}, voter=16, mlp=16)
    _, submitted = decide(carol, 1)
    assert submitted.decision.status == Decision.Status.FINAL
    assert label_get_current(item=item).level == 1


@pytest.mark.django_db
def test_blind_double_review_agrees_into_a_label_or_goes_to_adjudication(
    alice, bob, settings, no_gold
):
    settings.DOUBLE_REVIEW_SHARE = 1.0
    agreed, differed = make_item(), make_item()

    decide(alice, 4, item=item_claim_next(moderator=alice))
    decide(alice, 2, item=item_claim_next(moderator=alice))
    assert Decision.objects.filter(status=Decision.Status.PENDING).count() == 2
    assert not Label.objects.exists()

    first, _ = decide(bob, 4 if item_claim_next(moderator=bob) == agreed else 8)
    second, _ = decide(bob, 4 if item_claim_next(moderator=bob) == agreed else 8)

    assert {first, second} == {agreed, differed}
    assert label_get_current(item=agreed).level == 4
    assert label_get_current(item=differed) is None
    assert ReviewTask.objects.filter(item=differed, kind=Kind.ADJUDICATION).exists()


def _gold(count, level=4):
    items = [make_item(queued=False) for _ in range(count)]
    for item in items:
        Label.objects.create(item=item, level=level, origin="corpus")
    return items


@pytest.mark.django_db
def test_a_gold_answer_is_scored_and_never_changes_the_label(alice, carol, settings):
    settings.GOLD_SHARE = 1.0
    (item,) = _gold(1, level=8)
    assert gold_mark(items=[item], admin=carol) == 1
    label = label_get_current(item=item)

    served = item_claim_next(moderator=alice)
    assert served == item
    assert task_get_held(moderator=alice).kind == Kind.GOLD
    _, answer = decide(alice, 2, item=served)

    assert answer.decision.status == Decision.Status.GOLD
    assert label_get_current(item=item) == label  # the same label, nothing superseded it
    (result,) = gold_results(moderator=alice)
    assert (result.answers, result.hits, result.under, result.over) == (1, 0, 1, 0)
    assert item_claim_next(moderator=alice) is None  # answered once, never served again


@pytest.mark.django_db
def test_a_moderator_who_misses_gold_is_held_and_their_decisions_wait(alice, bob, carol, settings):
    settings.GOLD_SHARE = 1.0
    settings.GOLD_MIN_ANSWERS = 5
    gold_mark(items=_gold(5, level=8), admin=carol)
    for _ in range(5):
        decide(alice, 1)  # every gold answer three levels below
    hold = hold_get_standing(moderator=alice)
    assert hold is not None and "5 answers" in hold.reason

    settings.GOLD_SHARE = 0.0
    item = make_item()
    _, submitted = decide(alice, 2)

    assert submitted.decision.status == Decision.Status.PENDING
    assert item not in training_items()  # a held moderator's decision trains nothing
    assert ReviewTask.objects.get(item=item).kind == Kind.SECOND_LOOK
    got, _ = decide(bob, 2)
    assert got == item and label_get_current(item=item).moderator == bob

    hold_clear(hold=hold, admin=carol)
    after = make_item()
    _, final = decide(alice, 2)
    assert final.decision.status == Decision.Status.FINAL and label_get_current(item=after)
    assert not ModeratorHold.objects.filter(cleared_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_second_look_confirms_a_label_or_supersedes_it(alice, bob, no_gold):
    kept, changed = make_item(queued=False), make_item(queued=False)
    for item in (kept, changed):
        decision_submit(
            item=item, level=2, moderator=alice, saw_label=None, correction=True, reason="x"
        )
    for item in (kept, changed):
        assert second_look_open(label=label_get_current(item=item), reason="likely", priority=1)
    assert item_claim_next(moderator=alice) is None  # not the one who labelled

    first, _ = decide(bob, 2 if item_claim_next(moderator=bob) == kept else 4)
    decide(bob, 2 if first != kept else 4)

    assert label_get_current(item=kept).moderator == alice
    assert Decision.objects.filter(item=kept, status=Decision.Status.CONFIRMS).exists()
    relabelled = label_get_current(item=changed)
    assert (relabelled.level, relabelled.moderator) == (4, bob)
    assert relabelled.supersedes.moderator == alice


@pytest.mark.django_db
def test_a_skipped_gold_item_is_not_scored_and_not_served_again(alice, carol, settings):
    settings.GOLD_SHARE = 1.0
    (item,) = _gold(1)
    gold_mark(items=[item], admin=carol)
    item_skip(item=item_claim_next(moderator=alice), moderator=alice)
    assert gold_results(moderator=alice) == []
    assert item_claim_next(moderator=alice) is None


@pytest.mark.django_db
def test_the_gold_share_holds_within_its_interval_over_500_claims(alice, carol, settings):
    """With GOLD_SHARE = 10%, the share of gold among 500 claims lies in the two-sided 99.9%
    Clopper-Pearson interval of a binomial(500, 0.1) draw around its observed count (a test
    that fails one run in a thousand by chance, and every run if the share is off by half)."""
    settings.GOLD_SHARE = 0.10
    gold_mark(items=_gold(120), admin=carol)
    for _ in range(500):
        make_item()
    served = 0
    for _ in range(500):
        item = item_claim_next(moderator=alice)
        task = task_get_held(moderator=alice, item=item)
        served += task is not None and task.kind == Kind.GOLD
        decision_submit(item=item, level=1, moderator=alice, saw_label=None)
    low, high = binomtest(served, 500).proportion_ci(confidence_level=0.999)
    assert low <= 0.10 <= high, f"{served} gold items in 500 claims"


@pytest.mark.django_db
def test_a_second_look_at_a_label_changed_meanwhile_is_closed_not_decided(alice, bob, carol):
    item = make_item(queued=False)
    decision_submit(
        item=item, level=2, moderator=alice, saw_label=None, correction=True, reason="x"
    )
    task = second_look_open(label=label_get_current(item=item), reason="likely", priority=1)
    assert item_claim_next(moderator=bob) == item
    decision_submit(
        item=item,
        level=4,
        moderator=carol,
        saw_label=label_get_current(item=item),
        correction=True,
        reason="an admin's correction",
    )

    submitted = decision_submit(item=item, level=8, moderator=bob, saw_label=None)

    assert submitted.decision is None and "changed since" in submitted.note
    task.refresh_from_db()
    assert (task.state, task.outcome) == (ReviewTask.State.DONE, "relabelled meanwhile")
    assert label_get_current(item=item).level == 4
