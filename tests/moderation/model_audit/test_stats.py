"""The audit figures against a hand count of hand-made decisions."""

from __future__ import annotations

import math

import pytest

from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import audit_next, audit_session_start, audit_skip
from moderation.model_audit.stats import Model, audit_counts, audit_rows, level_counts, wilson
from moderation.review.workflow import task_decide

from .conftest import audit_all, make_version, rated

# suggested, {expert: rating}, the audit's truth. Blocked (32) is above every level.
CASES = [
    (4, {"tag_rules": 4, "lstm": 2, "minilm": None}, 4),
    (8, {"tag_rules": 8, "lstm": 8, "minilm": 4}, 2),
    (16, {"tag_rules": 16, "lstm": 8, "minilm": 16}, 16),
    (4, {"tag_rules": 2, "lstm": 4, "minilm": 4}, 1),
    (8, {"tag_rules": 8, "lstm": None, "minilm": 8}, 32),
    (16, {"tag_rules": 4, "lstm": 16, "minilm": 2}, 8),
]


@pytest.fixture
def audited(carol) -> AuditSession:
    champion = make_version()
    truths = {}
    for suggested, experts, truth in CASES:
        prediction = rated(champion, suggested=suggested, experts=experts)
        truths[prediction.item_id] = truth
    return audit_all(carol, truths)


def counts_of(model: Model, level: int, rows) -> tuple[int, ...]:
    c = level_counts(rows, model, level)
    return (c.tp, c.fp, c.tn, c.fn, c.abstained)


SUGGESTED = Model("combiner", "suggested")


def test_the_suggestions_counts_equal_a_hand_count(audited):
    rows = audit_rows(session=audited)
    assert len(rows) == 6
    # R: all six rated R or above; four are (R, XXX, Blocked, X).
    assert counts_of(SUGGESTED, 4, rows) == (4, 2, 0, 0, 0)
    # X: rated X+ the PG13, XXX, Blocked and X items; the R and PG ones are not.
    assert counts_of(SUGGESTED, 8, rows) == (3, 1, 2, 0, 0)
    # XXX: rated XXX the XXX item (right) and the X item (wrong); missed the Blocked one.
    assert counts_of(SUGGESTED, 16, rows) == (1, 1, 3, 1, 0)


def test_each_experts_counts_leave_its_abstentions_out(audited):
    rows = audit_rows(session=audited)
    assert counts_of(Model("expert", "lstm"), 8, rows) == (2, 1, 2, 0, 1)
    assert counts_of(Model("expert", "minilm"), 4, rows) == (2, 2, 0, 1, 1)
    assert counts_of(Model("expert", "tag_rules"), 16, rows) == (1, 0, 4, 1, 0)


def test_every_model_has_a_row_per_level(audited):
    counts = audit_counts(audit_rows(session=audited))
    names = [(c.model.name, c.level) for c in counts]
    assert names[:3] == [("suggested", 4), ("suggested", 8), ("suggested", 16)]
    assert {n for n, _ in names} == {"suggested", "voter", "mlp", "lstm", "minilm", "tag_rules"}
    assert len(counts) == 6 * 3
    assert all(c.scored + c.abstained == 6 for c in counts)


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_precision_and_recall_carry_wilson_intervals(audited):
    counts = level_counts(audit_rows(session=audited), SUGGESTED, 4)
    precision = counts.precision
    assert (precision.k, precision.n, precision.value) == (4, 6, pytest.approx(4 / 6))
    low, high = wilson_by_hand(4, 6)
    assert (precision.low, precision.high) == (pytest.approx(low), pytest.approx(high))
    recall = counts.recall
    assert (recall.value, recall.high) == (1.0, pytest.approx(1.0))
    assert recall.low == pytest.approx(wilson_by_hand(4, 4)[0])


def test_no_item_no_rate():
    assert wilson(0, 0) is None


def test_skipped_items_are_not_counted_and_scopes_filter(carol):
    champion = make_version()
    rated(champion, suggested=4)
    rated(champion, suggested=8)
    session = audit_session_start(admin=carol, mode=AuditSession.Mode.TRIGGERED, size=5, days=7)
    audit_skip(task=audit_next(admin=carol), admin=carol)
    task = audit_next(admin=carol)
    task_decide(task=task, level=2, moderator=carol)
    rows = audit_rows(session=session)
    assert [(r.uid, r.truth, r.auditor) for r in rows] == [(str(task.item.uid), 2, "carol")]
    assert len(audit_rows(mode=AuditSession.Mode.TRIGGERED)) == 1
    assert audit_rows(mode=AuditSession.Mode.NEAR_MISS) == []


def test_a_row_keeps_the_prediction_it_was_sampled_on(carol):
    champion = make_version()
    prediction = rated(champion, suggested=8, experts={"tag_rules": 8, "lstm": None})
    session = audit_all(carol, {prediction.item_id: 8})
    champion.status = "former"
    champion.save()
    newer = make_version("v2")
    rated(newer, suggested=1)
    row = audit_rows(session=session)[0]
    assert (row.version, row.suggested, row.experts) == ("v1", 8, {"tag_rules": 8, "lstm": None})
