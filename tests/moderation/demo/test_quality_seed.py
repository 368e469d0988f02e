"""The demo's label-quality seed, on the test database: gold items at the corpus's labels and
blind double reviews answered through the review services; a second run adds nothing."""

from __future__ import annotations

import json

import pytest

from moderation.demo.quality import DOUBLE_REVIEWS, big_downgrade_report, label_quality_seed
from moderation.review.decisions import label_create
from moderation.review.labels import label_get_current
from moderation.review.models import GoldItem, ReviewTask
from tests.moderation.review.conftest import make_item, make_prediction, make_version

LEVELS = [1, 2, 4, 8, 16]


@pytest.mark.django_db
def test_the_seed_marks_gold_and_answers_double_reviews(tmp_path, carol, settings):
    champion = make_version("v1")
    settings.DOUBLE_REVIEW_SHARE = 1.0
    carol.username = "admin"
    carol.save()
    labelled = [make_item(queued=False, external_id=f"l{i}") for i in range(15)]
    for i, item in enumerate(labelled):
        label_create(item=item, level=LEVELS[i % 5], origin="corpus")
    make_prediction(labelled[0], champion, experts={"tag_rules": 16}, voter=16, mlp=16)
    for i in range(20):
        make_item(external_id=f"u{i}")
    names = {1: "PG", 2: "PG13", 4: "R", 8: "X", 16: "XXX"}
    records = [{"id": f"u{i}", "rating": names[LEVELS[i % 5]]} for i in range(20)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    said = []

    label_quality_seed(corpus_dir=tmp_path, admin_username="admin", say=said.append)

    assert GoldItem.objects.count() == 15
    assert {g.level for g in GoldItem.objects.all()} == set(LEVELS)
    doubles = ReviewTask.objects.filter(kind=ReviewTask.Kind.DOUBLE)
    assert doubles.filter(state="done").count() == DOUBLE_REVIEWS
    agreed = doubles.filter(outcome="agreed")
    assert agreed.count() == DOUBLE_REVIEWS - DOUBLE_REVIEWS // 4
    for task in agreed:
        assert label_get_current(item=task.item).level == task.pending.level
    assert ReviewTask.objects.filter(kind="adjudication", state="open").count() == 4
    # The PG item the champion rates XXX: a corpus label four levels below its suggestion.
    assert "1 of 1 predicted corpus labels" in big_downgrade_report()

    label_quality_seed(corpus_dir=tmp_path, admin_username="admin", say=said.append)
    assert GoldItem.objects.count() == 15 and doubles.count() == DOUBLE_REVIEWS
