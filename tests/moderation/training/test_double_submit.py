"""A slow action posted twice (a double click, two tabs) acts once, and says so; every slow
action's form is marked for the busy spinner (static/site/busy.js)."""

import re

import pytest
from django.urls import reverse

from moderation.inference.models import ModelVersion
from moderation.training.gate import promotion_gate
from moderation.training.models import Promotion, TrainingRun
from tests.moderation.review.conftest import make_item, make_prediction
from tests.moderation.training.conftest import run_promotions
from tests.moderation.training.test_views import PASSED, finished_run, report

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidate(champion, bundle_dir) -> ModelVersion:
    """A candidate the gate passed, whose bundle loads."""
    version = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    finished_run(champion, candidate=version, gate=PASSED)
    return version


def test_start_retrain_posted_twice_queues_one_run(carol_client, champion):
    url = reverse("training:start")
    first = carol_client.post(url, {"mode": "mlp"})
    second = carol_client.post(url, {"mode": "mlp"}, follow=True)
    run = TrainingRun.objects.get()
    assert first.url == reverse("training:run", args=[run.pk])
    # The second lands on the run the first started, and says nothing else was started.
    assert second.redirect_chain[-1][0] == reverse("training:run", args=[run.pk])
    assert f"already queued or running (run #{run.pk})" in second.text
    assert "this click started nothing" in second.text


def test_recalibrate_posted_while_a_run_is_active_starts_nothing(carol_client, bounded_champion):
    carol_client.post(reverse("training:start"), {"mode": "mlp"})
    response = carol_client.post(
        reverse("training:recalibrate"), {"alpha_percent": "5"}, follow=True
    )
    assert TrainingRun.objects.count() == 1
    assert "nothing was recalibrated" in response.text


def test_promote_posted_twice_makes_one_promotion(carol_client, candidate):
    url = reverse("training:promote", args=[candidate.pk])
    carol_client.post(url)
    second = carol_client.post(url, follow=True)
    assert Promotion.objects.count() == 1
    assert "Nothing changed: the promotion of cand-1 is under way already" in second.text
    (promotion,) = run_promotions()
    assert promotion.state == "done"


def test_promote_posted_again_after_the_promotion_changes_nothing(carol_client, candidate):
    url = reverse("training:promote", args=[candidate.pk])
    carol_client.post(url)
    run_promotions()
    again = carol_client.post(url, follow=True)
    assert Promotion.objects.count() == 1
    assert "Nothing changed: cand-1 is the champion already" in again.text


def test_roll_back_posted_twice_makes_one_rollback(carol_client, champion, candidate):
    carol_client.post(reverse("training:promote", args=[candidate.pk]))
    run_promotions()
    url = reverse("training:rollback", args=[champion.pk])
    carol_client.post(url, {"confirm": "yes"})
    second = carol_client.post(url, {"confirm": "yes"}, follow=True)
    assert Promotion.objects.filter(kind="rollback").count() == 1
    assert "Nothing changed: the rollback of" in second.text
    run_promotions()
    third = carol_client.post(url, {"confirm": "yes"}, follow=True)
    assert Promotion.objects.filter(kind="rollback").count() == 1
    assert f"Nothing changed: {champion.version} is the champion already" in third.text


def test_another_versions_promotion_is_still_refused_as_busy(
    carol_client, champion, candidate, bundle_dir
):
    other = ModelVersion.objects.create(version="cand-2", path=str(bundle_dir))
    finished_run(champion, candidate=other, gate=PASSED)
    carol_client.post(reverse("training:promote", args=[candidate.pk]))
    response = carol_client.post(reverse("training:promote", args=[other.pk]), follow=True)
    assert Promotion.objects.count() == 1
    assert "Not promoted: another promotion or rollback is under way" in response.text


# -- the busy spinner on every slow action ---------------------------------------------------


def busy_forms(html: str) -> dict[str, str]:
    """Each form marked data-busy, by its action: its busy text."""
    forms = re.findall(r"<form\b[^>]*>", html)
    marked = {}
    for tag in forms:
        busy = re.search(r'data-busy="([^"]*)"', tag)
        action = re.search(r'action="([^"]*)"', tag)
        if busy and action:
            marked[action[1]] = busy[1]
    return marked


def test_start_retrain_and_the_label_error_pass_are_marked_busy(carol_client, champion):
    forms = busy_forms(carol_client.get(reverse("training:runs")).text)
    assert forms[reverse("training:start")] == "Starting…"
    assert forms[reverse("training:label_errors")] == "Queueing…"


def test_promote_roll_back_and_recalibrate_are_marked_busy(
    carol_client, bounded_champion, bundle_dir
):
    candidate = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    gate = promotion_gate(candidate=report(), champion=report())
    run = finished_run(bounded_champion, candidate=candidate, gate=gate)
    ModelVersion.objects.create(version="old", path=str(bundle_dir), status="former")
    forms = busy_forms(carol_client.get(reverse("training:versions")).text)
    assert forms[reverse("training:promote", args=[candidate.pk])] == "Promoting…"
    former = ModelVersion.objects.get(version="old")
    assert forms[reverse("training:rollback", args=[former.pk])] == "Rolling back…"
    assert forms[reverse("training:recalibrate")] == "Starting…"
    page = carol_client.get(reverse("training:run", args=[run.pk])).text
    assert busy_forms(page)[reverse("training:promote", args=[candidate.pk])] == "Promoting…"


def test_the_model_audit_start_is_marked_busy(carol_client, champion):
    forms = busy_forms(carol_client.get(reverse("model_audit:index")).text)
    assert forms[reverse("model_audit:start")] == "Starting…"


def test_the_grids_confirm_and_set_for_all_are_marked_busy(client, alice, champion):
    for _ in range(2):
        make_prediction(make_item(), champion, experts={"tag_rules": 4}, voter=4, mlp=4)
    client.force_login(alice)
    page = client.get(client.post(reverse("review:grid_claim"), {"source": ""})["Location"]).text
    decide = re.search(r'<form id="grid-decide"[^>]*>', page)[0]
    assert 'data-busy="Saving the decisions…"' in decide
    # Its buttons are the toolbar's, outside the form: they are disabled with it.
    assert 'data-busy-disable="#grid-review [data-grid]"' in decide
    assert page.count("data-grid=") >= 2


def test_every_page_loads_the_busy_script(carol_client, champion):
    page = carol_client.get(reverse("training:runs")).text
    assert re.search(r'<script src="[^"]*site/busy\.js" defer></script>', page)
    assert re.search(r'<link rel="stylesheet" href="[^"]*site/busy\.css">', page)
