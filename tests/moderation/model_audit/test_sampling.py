"""Which items an audit session samples, and how its items are served."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.media.corrections import item_purge
from moderation.media.models import MediaItem
from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import (
    AuditError,
    audit_next,
    audit_session_start,
    audit_skip,
    is_near_miss,
    near_miss_gap,
)
from moderation.review.models import ReviewTask
from moderation.review.task_claims import task_get_held

from .conftest import make_version, rated

TRIGGERED, NEAR_MISS = AuditSession.Mode.TRIGGERED, AuditSession.Mode.NEAR_MISS


def sampled_items(session: AuditSession) -> set[int]:
    return set(session.samples.values_list("task__item_id", flat=True))


def test_triggered_samples_only_recent_unpurged_items_the_champion_rated_r_or_above(carol):
    champion = make_version("v1")
    former = make_version("v0", status="former")
    hits = {rated(champion, suggested=level).item_id for level in (4, 8, 16)}
    rated(champion, suggested=2)  # below R
    old = rated(champion, suggested=8)
    MediaItem.objects.filter(pk=old.item_id).update(received_at=timezone.now() - timedelta(days=9))
    purged = rated(champion, suggested=16)
    item_purge(item=purged.item, admin=carol, reason="illegal material")
    rated(former, suggested=16)  # only a former champion rated it
    session = audit_session_start(admin=carol, mode=TRIGGERED, size=50, days=7)
    assert sampled_items(session) == hits


def test_a_session_samples_at_most_its_size(carol):
    champion = make_version()
    for _ in range(5):
        rated(champion, suggested=4)
    session = audit_session_start(admin=carol, mode=TRIGGERED, size=3, days=7)
    assert session.samples.count() == 3


def test_the_near_miss_gap_is_the_top_probability_less_the_best_r_or_above():
    assert near_miss_gap(mlp_rating=2, mlp_probs=[0.1, 0.4, 0.3, 0.15, 0.05]) == pytest.approx(0.1)
    assert near_miss_gap(mlp_rating=1, mlp_probs=[0.5, 0.1, 0.1, 0.2, 0.1]) == pytest.approx(0.3)
    assert near_miss_gap(mlp_rating=4, mlp_probs=[0.1, 0.1, 0.6, 0.1, 0.1]) is None
    assert near_miss_gap(mlp_rating=2, mlp_probs=[0.5, 0.5]) is None


def test_near_miss_holds_within_the_margin_and_not_beyond(champion):
    inside = rated(champion, suggested=2, mlp=2, mlp_probs=[0.05, 0.45, 0.31, 0.1, 0.09])
    edge = rated(champion, suggested=2, mlp=2, mlp_probs=[0.05, 0.45, 0.30, 0.1, 0.1])
    beyond = rated(champion, suggested=2, mlp=2, mlp_probs=[0.05, 0.50, 0.29, 0.1, 0.06])
    assert is_near_miss(prediction=inside, margin=0.15)
    assert is_near_miss(prediction=edge, margin=0.15 + 1e-9)
    assert not is_near_miss(prediction=beyond, margin=0.15)


def test_near_miss_samples_items_rated_below_r_whose_mlp_nearly_rated_r_or_above(carol, settings):
    settings.MODEL_AUDIT_MARGIN = 0.15
    champion = make_version()
    near = rated(champion, suggested=2, mlp=2, mlp_probs=[0.1, 0.4, 0.3, 0.15, 0.05])
    near_x = rated(champion, suggested=1, mlp=1, mlp_probs=[0.35, 0.1, 0.05, 0.3, 0.2])
    rated(champion, suggested=2, mlp=2, mlp_probs=[0.1, 0.6, 0.2, 0.05, 0.05])  # gap 0.4
    rated(champion, suggested=4, mlp=4, mlp_probs=[0.1, 0.3, 0.4, 0.1, 0.1])  # triggered
    # The MLP nearly said R, but the suggestion already was R: not a miss.
    rated(champion, suggested=4, mlp=2, mlp_probs=[0.1, 0.4, 0.35, 0.1, 0.05])
    session = audit_session_start(admin=carol, mode=NEAR_MISS, size=50, days=7)
    assert sampled_items(session) == {near.item_id, near_x.item_id}
    assert session.margin == 0.15
    gaps = dict(session.samples.values_list("task__item_id", "gap"))
    assert gaps[near.item_id] == pytest.approx(0.1)


def test_a_wider_margin_samples_more_near_misses(carol):
    champion = make_version()
    rated(champion, suggested=2, mlp=2, mlp_probs=[0.1, 0.4, 0.3, 0.15, 0.05])
    rated(champion, suggested=2, mlp=2, mlp_probs=[0.1, 0.6, 0.2, 0.05, 0.05])
    narrow = audit_session_start(admin=carol, mode=NEAR_MISS, size=50, days=7, margin=0.15)
    assert narrow.samples.count() == 1
    wide = audit_session_start(admin=carol, mode=NEAR_MISS, size=50, days=7, margin=0.5)
    assert wide.samples.count() == 1  # the first is open in the narrow session already


def test_items_open_in_another_session_are_not_sampled_again(carol):
    champion = make_version()
    rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    with pytest.raises(AuditError, match="fits a triggered audit"):
        audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)


def test_no_champion_no_audit(carol):
    with pytest.raises(AuditError, match="champion"):
        audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)


def test_tasks_open_assigned_to_the_admin_and_unclaimed_with_an_audit_row(carol):
    champion = make_version()
    prediction = rated(champion, suggested=4)
    session = audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    task = session.samples.get().task
    assert (task.kind, task.state, task.assigned_to, task.claimed_by) == (
        "audit",
        "open",
        carol,
        None,
    )
    assert AuditEvent.objects.filter(item_id=prediction.item_id, new="model audit opened").exists()


def test_next_claims_one_at_a_time_with_a_lease_and_gives_back_the_held_one(carol):
    champion = make_version()
    rated(champion, suggested=4)
    rated(champion, suggested=8)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    first = audit_next(admin=carol)
    assert first.claimed_by == carol and first.claimed_until > timezone.now()
    assert audit_next(admin=carol) == first
    assert ReviewTask.objects.filter(kind="audit", state="claimed").count() == 1
    assert task_get_held(moderator=carol, audit=True) == first
    assert task_get_held(moderator=carol) is None  # the review page never serves it


def test_another_admins_audit_is_not_served(carol):
    from tests.moderation.people import make_user

    dave = make_user("dave", "admins")
    champion = make_version()
    rated(champion, suggested=4)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    assert audit_next(admin=dave) is None


def test_a_skipped_item_is_closed_uncounted_and_may_be_drawn_again(carol):
    champion = make_version()
    rated(champion, suggested=4)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    task = audit_next(admin=carol)
    audit_skip(task=task, admin=carol)
    task.refresh_from_db()
    assert (task.state, task.outcome, task.closed_by) == ("done", "skipped", None)
    assert audit_next(admin=carol) is None
    again = audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    assert again.samples.count() == 1


def test_an_item_purged_after_sampling_is_closed_not_served(carol):
    champion = make_version()
    prediction = rated(champion, suggested=4)
    audit_session_start(admin=carol, mode=TRIGGERED, size=5, days=7)
    item_purge(item=prediction.item, admin=carol, reason="illegal material")
    assert audit_next(admin=carol) is None
    assert ReviewTask.objects.get(kind="audit").outcome == "purged"
