"""The retraining pages: starting, following and judging runs, and the registry's buttons."""

import shutil

import pytest
from django.urls import reverse

from moderation.inference.models import ModelVersion
from moderation.training import runs
from moderation.training.gate import promotion_gate
from moderation.training.models import TrainingRun
from tests.moderation.training.conftest import run_promotions

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
REPORT = {
    "n": 24,
    "accuracy": 0.75,
    "macro_f1": 0.5,
    "dcm_rate": 0.05,
    "dcm_count": 1,
    "severe_dcm_count": 1,
    "severe_dcm_rate": 0.1,
    "explicit_support": 4,
    "intervals": {"macro_f1": [0.41, 0.62], "dcm_rate": [0.0, 0.125], "severe_dcm_rate": None},
}


def report(**changes):
    return {**REPORT, **changes, "models": {"voter": {**REPORT, "n": 20}, "mlp": REPORT}}


# A gate verdict that passed outright, and one that refused.
PASSED = {"passed": True, "needs_admin": "", "checks": []}
REFUSED = {"passed": False, "needs_admin": "", "checks": []}


def finished_run(champion, **fields) -> TrainingRun:
    fields = {"state": "succeeded", "active": None, "stage": "done", "progress": 1.0, **fields}
    return TrainingRun.objects.create(base_version=champion, **fields)


def test_starting_a_retrain_queues_a_run(carol_client, carol, champion):
    response = carol_client.post(reverse("training:start"), {"mode": "mlp"}, follow=True)
    run = TrainingRun.objects.get()
    assert (run.state, run.mode, run.started_by, run.trigger) == ("queued", "mlp", carol, "admin")
    assert f"Retrain #{run.pk} queued" in response.text


def test_a_full_retrain_can_be_chosen(carol_client, champion):
    carol_client.post(reverse("training:start"), {"mode": "full"})
    assert TrainingRun.objects.get().mode == "full"


def test_a_second_retrain_is_refused_with_a_clear_message(carol_client, champion):
    running = runs.training_run_start()
    response = carol_client.post(reverse("training:start"), {"mode": "mlp"}, follow=True)
    assert TrainingRun.objects.count() == 1
    assert f"already queued or running (run #{running.pk})" in response.text


def test_the_runs_list_polls_while_a_run_is_active(carol_client, champion):
    run = runs.training_run_start()
    response = carol_client.get(reverse("training:runs"), **HTMX)
    assert 'hx-trigger="every 2s"' in response.text
    assert "<html" not in response.text and f'id="run-{run.pk}"' in response.text


def test_the_runs_list_stops_polling_once_runs_finished(carol_client, champion):
    run = runs.training_run_start()
    runs.training_run_cancel(run=run)
    response = carol_client.get(reverse("training:runs"), **HTMX)
    assert "hx-trigger" not in response.text and 'data-state="cancelled"' in response.text


def test_the_run_panel_polls_while_active_and_not_after(carol_client, champion):
    run = runs.training_run_start()
    TrainingRun.objects.filter(pk=run.pk).update(state="running", stage="mlp", progress=0.4)
    url = reverse("training:run", args=[run.pk])
    active = carol_client.get(url, **HTMX).text
    assert 'hx-trigger="every 2s"' in active and "<html" not in active
    assert 'aria-valuenow="40"' in active and ">Training the MLP<" in active
    TrainingRun.objects.filter(pk=run.pk).update(
        state="succeeded", active=None, stage="done", progress=1.0
    )
    finished = carol_client.get(url, **HTMX).text
    assert "hx-trigger" not in finished and 'aria-valuenow="100"' in finished


def test_the_run_page_shows_the_gate_beside_the_champion(carol_client, champion, settings):
    settings.GATE_MIN_EXPLICIT = 10
    candidate = ModelVersion.objects.create(version="cand-1", path="/x")
    gate = promotion_gate(candidate=report(macro_f1=0.4, severe_dcm_count=2), champion=report())
    run = finished_run(champion, candidate=candidate, gate=gate, reason="refused: ...")
    page = carol_client.get(reverse("training:run", args=[run.pk])).text
    assert "Candidate" in page and "Champion" in page and "Voter" in page and "MLP" in page
    assert "0.400" in page and "0.500" in page  # macro-F1, candidate and champion
    assert "[0.410, 0.620]" in page and "[0.0%, 12.5%]" in page  # intervals as [lo, hi]
    assert "Support: explicit (X/XXX) items" in page
    assert page.count("check-fail") == 2 and "severe DCM count 2 is above" in page
    assert "only 4 explicit test items" in page and 'class="needs-admin"' in page
    assert reverse("training:promote", args=[candidate.pk]) in page


def test_the_log_is_escaped(carol_client, champion):
    run = finished_run(champion, log="<script>alert(1)</script>\n")
    page = carol_client.get(reverse("training:run", args=[run.pk])).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_cancelling_an_active_run(carol_client, champion):
    run = runs.training_run_start()
    response = carol_client.post(reverse("training:cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.state == "cancelled" and "cancelled" in response.text


def test_promoting_a_candidate_makes_it_the_champion(carol_client, champion, bundle_dir):
    candidate = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    run = finished_run(champion, candidate=candidate, gate=PASSED)
    back = reverse("training:run", args=[run.pk])
    response = carol_client.post(reverse("training:promote", args=[candidate.pk]), {"next": back})
    # It returns at once: the versions page follows the promotion, which a worker runs.
    assert response.url == reverse("training:versions")
    candidate.refresh_from_db()
    assert candidate.status == "candidate"
    page = carol_client.get(response.url).text
    assert 'id="promotion"' in page and "Promoting" in page
    run_promotions()
    candidate.refresh_from_db()
    champion.refresh_from_db()
    assert (candidate.status, champion.status) == ("champion", "former")


def test_promote_ignores_a_next_url_on_another_site(carol_client, champion, bundle_dir):
    candidate = ModelVersion.objects.create(version="cand-1", path=str(bundle_dir))
    response = carol_client.post(
        reverse("training:promote", args=[candidate.pk]), {"next": "https://evil.example/"}
    )
    assert response.url == reverse("training:versions")


@pytest.mark.parametrize("damage", ["truncated weights", "gone"])
def test_a_candidate_whose_bundle_does_not_load_is_never_promoted(
    carol_client, champion, bundle_dir, tmp_path, damage
):
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    if damage == "gone":
        shutil.rmtree(broken)
    else:
        weights = next(broken.glob("experts/*/model.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    candidate = ModelVersion.objects.create(version="cand-1", path=str(broken))
    finished_run(champion, candidate=candidate, gate=PASSED)

    response = carol_client.post(reverse("training:promote", args=[candidate.pk]), follow=True)
    promotions = run_promotions()

    candidate.refresh_from_db()
    champion.refresh_from_db()
    assert (candidate.status, champion.status) == ("candidate", "champion")
    if damage == "gone":  # refused at once
        assert promotions == []
        assert "Not promoted: the bundle of cand-1 does not load" in response.text
    else:  # the worker finds out
        (promotion,) = promotions
        assert promotion.state == "failed" and "the champion is unchanged" in promotion.error
        page = carol_client.get(reverse("training:versions")).text
        assert 'The promotion of <span class="mono">cand-1</span> failed' in page


def test_rolling_back_restores_an_earlier_version(carol_client, champion, bundle_dir):
    newer = ModelVersion.objects.create(version="newer", path=str(bundle_dir))
    finished_run(champion, candidate=newer, gate=PASSED)
    carol_client.post(reverse("training:promote", args=[newer.pk]))
    run_promotions()
    url = reverse("training:rollback", args=[champion.pk])
    unconfirmed = carol_client.post(url, follow=True)
    assert "confirm the rollback" in unconfirmed.text
    response = carol_client.post(url, {"confirm": "yes"}, follow=True)
    assert "Rolling back to" in response.text
    run_promotions()
    champion.refresh_from_db()
    newer.refresh_from_db()
    assert (champion.status, newer.status) == ("champion", "former")
    page = carol_client.get(reverse("training:versions")).text
    assert "became the champion" in page and "(rollback by carol)" in page


def test_a_version_whose_bundle_is_gone_is_not_rolled_back_to(carol_client, champion):
    gone = ModelVersion.objects.create(version="gone", path="/nowhere", status="former")
    url = reverse("training:rollback", args=[gone.pk])
    response = carol_client.post(url, {"confirm": "yes"}, follow=True)
    gone.refresh_from_db()
    champion.refresh_from_db()
    assert (gone.status, champion.status) == ("former", "champion")
    assert "Not rolled back" in response.text


def test_retiring_a_candidate(carol_client, champion):
    candidate = ModelVersion.objects.create(version="cand-1", path="/x")
    carol_client.post(reverse("training:retire", args=[candidate.pk]))
    candidate.refresh_from_db()
    assert candidate.status == "retired"


def test_the_champion_cannot_be_retired(carol_client, champion):
    response = carol_client.post(reverse("training:retire", args=[champion.pk]), follow=True)
    champion.refresh_from_db()
    assert champion.status == "champion"
    assert "cannot be retired" in response.text


def test_the_versions_page_lists_every_version_with_its_figures(carol_client, champion):
    from moderation.training.models import Evaluation

    candidate = ModelVersion.objects.create(version="cand-1", path="/x")
    Evaluation.objects.create(model_version=candidate, data="test", n=24, report=report())
    page = carol_client.get(reverse("training:versions")).text
    assert champion.version in page and "cand-1" in page
    assert "5.0%" in page and "1 of 4 explicit" in page and "0.500" in page
    assert reverse("training:promote", args=[candidate.pk]) in page
    assert reverse("training:retire", args=[champion.pk]) not in page


def test_each_versions_mlp_says_which_experts_it_reads(carol_client, champion):
    candidate = ModelVersion.objects.create(
        version="v-images",
        path="/bundles/v-images",
        manifest={"stacking": {"mlp_reads": ["tag_rules", "lstm", "image"]}},
    )
    ModelVersion.objects.create(version="v-old", path="/bundles/v-old", status="retired")
    run = finished_run(champion, candidate=candidate)

    versions = carol_client.get(reverse("training:versions")).text
    assert "MLP reads" in versions
    assert "tag_rules, lstm, image" in versions
    assert "tag_rules, lstm, lstm_tags" in versions  # the champion's manifest records it
    assert "not recorded" in versions  # a bundle made before bundles kept track

    panel = carol_client.get(reverse("training:run", args=[run.pk])).text
    assert "MLP reads: " in panel and "tag_rules, lstm, image" in panel
