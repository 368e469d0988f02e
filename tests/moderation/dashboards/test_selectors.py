from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from moderation.dashboards import selectors
from moderation.dashboards.live import live_report, live_reports_recent
from moderation.dashboards.selectors import (
    evaluation_latest_by_version,
    moderation_health,
    severe_down_class_items,
)
from moderation.media.models import MediaItem
from moderation.review.models import ReviewState
from moderation.training.models import TrainedItem
from rating_models.metrics import rating_report
from tests.moderation.people import make_user

from .conftest import make_evaluation, make_item, make_label, make_prediction

PG, PG13, R, X, XXX, BLOCKED = 1, 2, 4, 8, 16, 32


@pytest.fixture
def live_case(champion, candidate, alice):
    """Four scored items for the champion, and what must be left out of its live figures."""
    explicit = make_item()  # X, rated PG by everything: a severe DCM
    make_prediction(explicit, champion, suggested=PG, experts={"tag_rules": X, "lstm": PG})
    make_label(explicit, X, alice)
    mild = make_item()  # PG, right; tag_rules abstains
    make_prediction(mild, champion, suggested=PG, experts={"tag_rules": None, "lstm": PG})
    make_label(mild, PG, alice)
    r = make_item()  # R: the voter says PG13 (a DCM, not severe)
    make_prediction(r, champion, suggested=R, voter=PG13, mlp=R)
    make_label(r, R, alice)
    corrected = make_item()  # labelled X, then corrected to PG13: the current label counts
    make_prediction(corrected, champion, suggested=PG13)
    make_label(corrected, X, alice)
    make_label(corrected, PG13, alice)
    blocked = make_item()
    make_prediction(blocked, champion, suggested=PG)
    make_label(blocked, BLOCKED, alice)
    make_prediction(make_item(), champion, suggested=PG)  # never labelled
    imported = make_item()  # labelled by its source, not by a moderator: not a live label
    make_prediction(imported, champion, suggested=PG)
    make_label(imported, XXX)
    other = make_item()  # another version's prediction
    make_prediction(other, candidate, suggested=PG)
    make_label(other, XXX, alice)
    earlier = make_item()  # labelled before the champion rated it: not a test of the version
    make_label(earlier, XXX, alice, at=timezone.now() - timedelta(days=1))
    make_prediction(earlier, champion, suggested=PG)
    learned = make_item()  # a training item of the champion's: it learned this label
    make_prediction(learned, champion, suggested=PG)
    make_label(learned, XXX, alice)
    TrainedItem.objects.create(model_version=champion, item=learned)
    return champion


def test_live_report_scores_the_current_ratings_the_version_predicted(live_case):
    report = live_report(live_case)
    assert report["n"] == 4
    assert report["accuracy"] == 0.75
    assert report["dcm_count"] == 1
    assert report["dcm_rate"] == 0.25
    assert report["severe_dcm_count"] == 1
    assert report["explicit_support"] == 1
    assert report["severe_dcm_rate"] == 1.0
    assert report["confusion"][3][0] == 1  # true X, predicted PG


def test_live_report_gives_each_model_its_own_figures(live_case):
    models = live_report(live_case)["models"]
    assert set(models) == {"tag_rules", "lstm", "voter", "mlp"}
    assert models["voter"]["dcm_count"] == 2
    assert models["voter"]["severe_dcm_count"] == 1
    assert models["mlp"] == {**rating_report([3, 0, 2, 1], [0, 0, 2, 1]), "abstained": 0}


def test_an_abstaining_expert_is_scored_on_the_items_it_spoke_on(live_case):
    tag_rules = live_report(live_case)["models"]["tag_rules"]
    assert (tag_rules["n"], tag_rules["abstained"]) == (3, 1)
    assert tag_rules["severe_dcm_count"] == 0


def test_a_version_without_a_publishing_rule_has_no_live_automation(live_case):
    assert "automation" not in live_report(live_case)


def test_live_automation_is_the_dcm_among_exactly_the_items_published_unreviewed(champion, alice):
    published = [(PG, PG), (PG, PG13), (R, R)]  # (suggested, label): one of three down-classed
    for suggested, level in published:
        item = make_item()
        make_prediction(item, champion, suggested=suggested, auto_publish=True)
        make_label(item, level, alice)
    reviewed = make_item()  # not published: its DCM does not count among the published
    make_prediction(reviewed, champion, suggested=PG, auto_publish=False)
    make_label(reviewed, XXX, alice)
    make_prediction(make_item(), champion, suggested=PG, auto_publish=True)  # not labelled yet
    figures = live_report(champion)["automation"]
    assert (figures["published"], figures["share"]) == (3, 0.75)  # of the labelled items
    assert figures["dcm_rate"] == pytest.approx(1 / 3)
    assert (figures["rated"], figures["rated_share"]) == (5, 0.8)  # of every item it rated


def test_live_report_is_none_without_labelled_predictions(champion):
    make_prediction(make_item(), champion, suggested=PG)
    assert live_report(champion) is None


def test_live_figures_are_reused_for_the_configured_seconds(champion, alice, settings):
    item = make_item()
    make_prediction(item, champion, suggested=PG)
    make_label(item, PG, alice)
    settings.DASHBOARD_LIVE_SECONDS = 60
    cache.clear()
    try:
        counted, at = live_reports_recent([champion])
        make_label(item, X, alice)  # a correction within the minute is not counted yet
        assert live_reports_recent([champion]) == (counted, at)
    finally:
        cache.clear()
    settings.DASHBOARD_LIVE_SECONDS = 0
    recounted, later = live_reports_recent([champion])
    assert recounted[champion.pk]["confusion"][3][0] == 1  # true X, suggested PG
    assert later > at


def test_the_severe_list_holds_explicit_items_rated_mild_by_the_champion(champion, alice):
    by_suggestion = make_item()
    make_prediction(by_suggestion, champion, suggested=PG13)
    make_label(by_suggestion, XXX, alice)
    by_voter_only = make_item()
    make_prediction(by_voter_only, champion, suggested=X, voter=PG, mlp=X)
    make_label(by_voter_only, X, alice)
    rated_r = make_item()  # a DCM, but not a severe one
    make_prediction(rated_r, champion, suggested=R)
    make_label(rated_r, X, alice)
    no_longer_explicit = make_item()
    make_prediction(no_longer_explicit, champion, suggested=PG)
    make_label(no_longer_explicit, X, alice)
    make_label(no_longer_explicit, PG, alice)
    mild_truth = make_item()
    make_prediction(mild_truth, champion, suggested=PG)
    make_label(mild_truth, R, alice)

    rows = severe_down_class_items()
    assert {row.item for row in rows} == {by_suggestion, by_voter_only}
    voter_row = next(row for row in rows if row.item == by_voter_only)
    assert voter_row.slipped == ["voter"]
    assert voter_row.history_url == f"/review/items/{by_voter_only.uid}/"


def test_the_severe_list_follows_the_given_version(champion, candidate, alice):
    item = make_item()
    make_prediction(item, champion, suggested=X)
    make_prediction(item, candidate, suggested=PG)
    make_label(item, X, alice)
    assert severe_down_class_items() == []
    assert [row.item for row in severe_down_class_items(candidate)] == [item]


def test_the_severe_list_is_empty_without_a_champion(candidate):
    assert severe_down_class_items() == []


def test_the_latest_evaluation_of_each_version_is_picked(champion, candidate):
    now = timezone.now()
    make_evaluation(champion, [0], {"suggested": [0]}, at=now - timedelta(days=3))
    newest = make_evaluation(champion, [0], {"suggested": [0]}, at=now - timedelta(days=1))
    only = make_evaluation(candidate, [0], {"suggested": [0]})
    make_evaluation(candidate, [0], {"suggested": [0]}, data="live", at=now + timedelta(days=1))
    assert evaluation_latest_by_version() == {champion.pk: newest, candidate.pk: only}


def test_health_counts_moderators_labels_per_day_and_per_moderator(db, alice):
    bob = make_user("bob", "moderators")
    now = timezone.now()
    make_label(make_item(), PG, alice, agreed_with_voter=False, agreed_with_mlp=True)
    make_label(make_item(), X, alice, agreed_with_voter=True, agreed_with_mlp=True)
    make_label(make_item(), BLOCKED, alice)  # no prediction: agreement unknown
    make_label(make_item(), R, bob, at=now - timedelta(days=2), agreed_with_voter=False,
               agreed_with_mlp=False)  # fmt: skip
    make_label(make_item(), R, bob, at=now - timedelta(days=40))  # outside the window
    make_label(make_item(), PG)  # an import, not a moderator's label

    health = moderation_health(days=30)
    per_day = dict(health.labels_per_day)
    assert len(per_day) == 30
    assert per_day[now.date()] == 3
    assert per_day[(now - timedelta(days=2)).date()] == 1
    assert sum(per_day.values()) == health.labels == 4
    by_name = {m.username: m for m in health.moderators}
    assert (by_name["alice"].labels, by_name["alice"].blocked) == (3, 1)
    assert by_name["alice"].voter_correction_rate == 0.5
    assert by_name["bob"].mlp_correction_rate == 1.0
    assert (health.voter_corrected, health.voter_known) == (2, 3)
    assert (health.mlp_corrected, health.mlp_known) == (1, 3)


def test_health_measures_the_queue_and_its_oldest_item(db):
    ReviewState.objects.all().delete()
    old = make_item()
    old.received_at = timezone.now() - timedelta(hours=5)
    old.save()
    make_item()
    claimed = make_item()
    ReviewState.objects.filter(item=claimed).update(state=ReviewState.State.CLAIMED)
    done = make_item()
    ReviewState.objects.filter(item=done).update(state=ReviewState.State.DONE)
    done.received_at = timezone.now() - timedelta(days=9)
    done.save()

    health = moderation_health()
    assert (health.queue_size, health.queued, health.claimed) == (3, 2, 1)
    assert timedelta(hours=4, minutes=59) < health.oldest_age < timedelta(hours=5, minutes=1)


@pytest.mark.parametrize("oldest_from_queue_up_to", [0, 10_000], ids=["walk", "queue"])
def test_health_finds_the_oldest_open_item_behind_older_decided_ones(
    db, monkeypatch, oldest_from_queue_up_to
):
    # Both ways of finding it: walking the items oldest first, or looking up each open item.
    monkeypatch.setattr(selectors, "OLDEST_FROM_QUEUE_UP_TO", oldest_from_queue_up_to)
    now = timezone.now()
    for hours, state in ((9, "done"), (8, "done"), (7, "claimed"), (6, "queued"), (1, "done")):
        item = make_item()
        MediaItem.objects.filter(pk=item.pk).update(received_at=now - timedelta(hours=hours))
        ReviewState.objects.filter(item=item).update(state=state)

    health = moderation_health()
    assert (health.queue_size, health.queued, health.claimed) == (2, 1, 1)
    assert health.oldest_queued_at == now - timedelta(hours=7)


def test_health_of_an_empty_queue_has_no_oldest_item(db):
    make_item()
    ReviewState.objects.update(state=ReviewState.State.DONE)
    health = moderation_health()
    assert (health.queue_size, health.queued, health.claimed) == (0, 0, 0)
    assert health.oldest_queued_at is None and health.oldest_age is None
