"""An MLP retrain of a champion whose suggestion is the bounded-DCM rule gives the new MLP its
own rule, calibrated at the champion's α, and keeps its calibration items."""

from __future__ import annotations

import pytest
from django.urls import reverse

from moderation.inference import bundles
from moderation.training import gate, runs, services
from moderation.training.models import TrainingRun
from rating_models.bundle import Bundle
from rating_models.calibration import read_calibration

pytestmark = pytest.mark.django_db


def test_an_mlp_retrain_of_a_bounded_champion_calibrates_the_new_mlps_rule(
    bounded_champion, settings
):
    settings.GATE_DCM_TOLERANCE = 1.0
    run = services.training_run_execute(run_id=runs.training_run_start().pk)

    assert run.state == "succeeded", run.reason
    candidate = Bundle.load(bundles.bundle_path(run.candidate))
    assert candidate.suggested == "bounded"
    assert candidate.rule.alpha == 0.1 and candidate.rule.n == run.n_train
    assert candidate.manifest["calibration"]["chosen"]["alpha"] == 0.1
    calibration = read_calibration(bundles.bundle_path(run.candidate))
    assert calibration is not None and len(calibration) == run.n_train
    assert bounded_champion.version != candidate.version


def test_a_recalibration_makes_a_candidate_judged_at_its_own_alpha(bounded_champion, settings):
    settings.AUTO_PROMOTE = False
    run = runs.training_run_start(mode=TrainingRun.Mode.RECALIBRATE, alpha=0.2)
    run = services.training_run_execute(run_id=run.pk)

    assert run.state == "succeeded", run.reason
    candidate = Bundle.load(bundles.bundle_path(run.candidate))
    champion_bundle = Bundle.load(bundles.bundle_path(bounded_champion))
    assert candidate.rule.alpha == 0.2
    assert candidate.manifest["recalibrated_from"] == bounded_champion.version
    assert candidate.mlp.config == champion_bundle.mlp.config  # nothing trained
    assert "recalibrating at α = 20.0%" in run.log
    assert run.gate["alpha"] == 0.2
    (dcm,) = [c for c in run.gate["checks"] if c["name"] == "DCM rate"]
    assert dcm["target"] == 0.2 and "its target α = 0.2" in dcm["detail"]


def test_the_admin_sets_alpha_on_the_versions_page(bounded_champion, carol_client):
    page = carol_client.get(reverse("training:versions")).text
    assert "α 10.0% · Set α…" in page and 'name="alpha_percent"' in page
    response = carol_client.post(reverse("training:recalibrate"), {"alpha_percent": "2.5"})
    run = TrainingRun.objects.get()
    assert (run.mode, run.alpha) == ("cal", 0.025)
    assert response.url == reverse("training:run", args=[run.pk])


@pytest.mark.parametrize("value", ["0", "90", "three", ""])
def test_an_alpha_outside_the_range_starts_nothing(bounded_champion, carol_client, value):
    response = carol_client.post(
        reverse("training:recalibrate"), {"alpha_percent": value}, follow=True
    )
    assert "Not recalibrated: the target DCM rate α is a percentage" in response.text
    assert not TrainingRun.objects.exists()


def test_a_champion_without_the_bounded_suggestion_has_no_alpha(champion, carol_client):
    assert "Set α" not in carol_client.get(reverse("training:versions")).text
    response = carol_client.post(
        reverse("training:recalibrate"), {"alpha_percent": "3"}, follow=True
    )
    assert "does not suggest by the bounded-DCM rule" in response.text
    assert not TrainingRun.objects.exists()


def test_the_gate_judges_a_recalibration_against_its_alpha_not_the_champions_dcm():
    report = {
        "severe_dcm_count": 0,
        "dcm_rate": 0.04,
        "macro_f1": 0.8,
        "explicit_support": 20,
        "models": {"voter": {}, "mlp": {}},
    }
    serving = {**report, "dcm_rate": 0.01}
    assert not gate.promotion_gate(candidate=report, champion=serving)["passed"]
    judged = gate.promotion_gate(candidate=report, champion=serving, alpha=0.05)
    assert judged["passed"] and judged["alpha"] == 0.05
    assert not gate.promotion_gate(candidate=report, champion=serving, alpha=0.03)["passed"]


def test_the_dashboard_shows_what_each_alpha_costs(bounded_champion, carol_client):
    from moderation.training.candidates import labelled_example as _labelled_example
    from moderation.training.selectors import test_items

    examples = [_labelled_example(i) for i in test_items()]
    evaluation = gate.evaluation_create(version=bounded_champion, examples=examples)
    rows = evaluation.report["tradeoff"]
    assert [r["alpha"] for r in rows if r["chosen"]] == [0.1]
    assert all({"dcm_rate", "over_rating_rate", "threshold"} <= set(r) for r in rows)

    url = reverse("dashboards:version", args=[bounded_champion.version])
    page = carol_client.get(url).text
    assert 'id="tradeoff"' in page and "What each α costs" in page
    assert "10.0% *" in page and "<svg" in page.split('id="tradeoff"')[1]
    assert all(0 <= r["automation_share"] <= 1 for r in rows)


def test_the_dashboard_shows_how_much_skips_review_and_the_dcm_among_it(
    bounded_champion, carol_client
):
    from moderation.training.candidates import labelled_example as _labelled_example
    from moderation.training.selectors import test_items

    examples = [_labelled_example(i) for i in test_items()]
    automation = gate.evaluation_create(version=bounded_champion, examples=examples).report[
        "automation"
    ]
    assert 0 < automation["published"] < len(examples)  # the toy rule publishes some, not all
    url = reverse("dashboards:version", args=[bounded_champion.version])
    section = carol_client.get(url).text.split('id="automation"')[1].split("</section>")[0]
    assert "Published without a moderator" in section
    assert f"{100 * automation['share']:.1f}%" in section
    assert "at most 10.0%, with 90.0% confidence" in section
