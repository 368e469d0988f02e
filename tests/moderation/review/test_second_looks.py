"""The label-error pass: the champion's out-of-sample probabilities (the bundle's out-of-fold
rows, stored predictions for the rest) flag likely label errors, which become second looks by
another moderator, highest down-class risk first; from the training page, by a real worker."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from moderation.inference.models import ModelVersion
from moderation.review.decisions import label_create
from moderation.review.models import ReviewTask
from moderation.review.second_looks import label_error_pass
from rating_models.calibration import CALIBRATION_FILE, CalibrationSet
from tests.moderation.review.conftest import make_item, make_prediction, probs_for
from tests.moderation.worker import broker, empty_redis, wait_for, worker
from tests.services import redis_url

LEVELS = [1, 2, 4, 8, 16]
REDIS = redis_url(13)


def corpus(tmp_path, moderator, *, per_level=12):
    """Labelled items, most in the bundle's out-of-fold rows with probabilities that agree
    with their label; planted: two explicit items labelled PG (in the bundle's rows) and one
    (a stored prediction only). Returns the champion and the planted items, riskiest first."""
    rows, items = [], []
    for level in LEVELS:
        for _ in range(per_level):
            item = make_item(queued=False)
            label_create(item=item, level=level, moderator=moderator)
            rows.append((str(item.uid), probs_for(level, 0.6), level))
            items.append(item)
    planted = []
    for true_level, confidence in ((16, 0.95), (8, 0.8)):
        item = make_item(queued=False, external_id=f"corpus-{true_level}")
        label_create(item=item, level=1, moderator=moderator)
        # Matched by the corpus id an imported item keeps, not its uid.
        rows.append((item.external_id, probs_for(true_level, confidence), 1))
        planted.append(item)
    path = tmp_path / "bundle"
    CalibrationSet(
        ids=[r[0] for r in rows],
        probs=np.array([r[1] for r in rows]),
        labels=np.array([LEVELS.index(r[2]) for r in rows]),
        votes=np.array([LEVELS.index(r[2]) for r in rows]),
    ).save(path / CALIBRATION_FILE)
    version = ModelVersion.objects.create(
        version="v1", path=str(path), status=ModelVersion.Status.CHAMPION
    )
    live = make_item(queued=False, split="test")
    label_create(item=live, level=2, moderator=moderator)
    make_prediction(
        live, version, experts={"tag_rules": 16}, voter=16, mlp=16, mlp_probs=probs_for(16, 0.7)
    )
    planted.append(live)
    return version, planted


@pytest.mark.django_db
def test_likely_label_errors_go_to_a_second_look_by_another_moderator(tmp_path, alice, bob):
    _, planted = corpus(tmp_path, alice)

    report = label_error_pass()

    assert (report.scored, report.from_bundle) == (63, 62)
    looks = list(ReviewTask.objects.filter(kind=ReviewTask.Kind.SECOND_LOOK).order_by("-priority"))
    assert {t.item for t in looks} >= set(planted)
    assert report.opened == len(looks) and report.found >= 3
    assert looks[0].item == planted[0]  # XXX at 95% labelled PG: the highest down-class risk
    assert all(t.excluded == alice and t.label.moderator == alice for t in looks)
    assert "likely label error" in looks[0].reason

    assert label_error_pass().opened == 0  # a label is asked about once


@pytest.mark.django_db
def test_the_limit_keeps_the_riskiest(tmp_path, alice):
    _, planted = corpus(tmp_path, alice)
    assert label_error_pass(limit=1).opened == 1
    assert ReviewTask.objects.get(kind=ReviewTask.Kind.SECOND_LOOK).item == planted[0]


@pytest.mark.django_db
def test_no_champion_no_pass(alice):
    assert label_error_pass().opened == 0


@pytest.mark.django_db(transaction=True)
def test_the_training_page_runs_the_pass_on_a_real_worker(client, tmp_path, alice, carol):
    _, planted = corpus(tmp_path, alice)
    empty_redis(REDIS)
    client.force_login(carol)
    page = client.get(reverse("training:runs")).content.decode()
    assert "Find likely label errors" in page
    with broker(REDIS), worker(REDIS, queues="default"):
        response = client.post(reverse("training:label_errors"), follow=True)
        assert "label-error pass is queued" in response.content.decode()
        wait_for(
            lambda: ReviewTask.objects.filter(item__in=planted).count() == len(planted),
            what="the worker's second looks",
        )
    client.force_login(alice)
    assert client.post(reverse("training:label_errors")).status_code == 403
