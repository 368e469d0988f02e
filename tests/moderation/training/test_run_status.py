"""A run's one status in plain words, the run page that shows only it, the banner that says
once why an admin decides, and how long each mode takes."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from moderation.inference.models import ModelVersion
from moderation.training import runs, selectors
from moderation.training.gate import promotion_gate
from moderation.training.models import Promotion, TrainingRun
from tests.moderation.training.test_views import PASSED, REFUSED, finished_run, report

pytestmark = pytest.mark.django_db


def status_of(run: TrainingRun) -> str:
    return selectors.training_run_get(pk=run.pk).status.words


def candidate_version(name: str = "cand-1", **fields) -> ModelVersion:
    return ModelVersion.objects.create(version=name, path=f"/bundles/{name}", **fields)


def test_a_queued_run_waits_for_a_worker(champion):
    assert status_of(runs.training_run_start()) == "Queued, waiting for a worker"


def test_a_running_run_is_running(champion):
    run = runs.training_run_start()
    TrainingRun.objects.filter(pk=run.pk).update(state="running", stage="mlp")
    assert status_of(run) == "Running"


def test_a_failed_run_says_failed_and_why(champion):
    run = finished_run(champion, state="failed", stage="mlp", reason="RuntimeError: no GPU")
    status = selectors.training_run_get(pk=run.pk).status
    assert (status.words, status.why) == ("Failed", "RuntimeError: no GPU")


def test_a_cancelled_run_says_cancelled(champion):
    run = runs.training_run_start()
    runs.training_run_cancel(run=run)
    assert status_of(run) == "Cancelled"


def test_a_refused_candidate_is_finished_and_not_promoted(champion):
    gate = promotion_gate(candidate=report(macro_f1=0.4), champion=report())
    run = finished_run(champion, candidate=candidate_version(), gate=gate)
    status = selectors.training_run_get(pk=run.pk).status
    assert status.words == "Finished, not promoted: the gate refused it"
    assert status.why == "worse than allowed on macro-F1"


def test_a_promoted_candidate_is_finished_and_promoted(champion):
    ModelVersion.objects.filter(pk=champion.pk).update(status="former")
    promoted = candidate_version(status="champion", promoted_at=timezone.now())
    run = finished_run(champion, candidate=promoted, gate=PASSED)
    assert status_of(run) == "Finished, promoted"


def test_a_candidate_promoted_over_the_gates_refusal_says_so(champion):
    promoted = candidate_version(status="former", promoted_at=timezone.now())
    run = finished_run(champion, candidate=promoted, gate=REFUSED)
    assert status_of(run) == "Finished, promoted by an admin over the gate's refusal"


def test_a_candidate_being_promoted_says_so(champion):
    candidate = candidate_version()
    run = finished_run(champion, candidate=candidate, gate=PASSED)
    Promotion.objects.create(version=candidate)
    assert status_of(run) == "Finished, being promoted"


def test_a_candidate_whose_promotion_failed_says_why(champion):
    candidate = candidate_version()
    run = finished_run(champion, candidate=candidate, gate=PASSED)
    Promotion.objects.create(version=candidate, state="failed", active=None, error="disk full")
    status = selectors.training_run_get(pk=run.pk).status
    assert status.words == "Finished, not promoted: its promotion failed"
    assert status.why == "disk full"


def test_a_passed_candidate_waits_for_an_admin_when_automatic_promotion_is_off(champion):
    run = finished_run(champion, candidate=candidate_version(), gate=PASSED)
    status = selectors.training_run_get(pk=run.pk).status
    assert status.words == "Finished, waiting for an admin to promote it"
    assert status.why == "it passed the gate; automatic promotion is off"


def test_a_retired_candidate_is_not_promoted(champion):
    run = finished_run(champion, candidate=candidate_version(status="retired"), gate=PASSED)
    assert status_of(run) == "Finished, not promoted: retired"


def run_page(client, run: TrainingRun) -> str:
    return client.get(reverse("training:run", args=[run.pk])).text


def test_the_run_page_shows_one_status_and_no_contradicting_word(carol_client, champion, settings):
    settings.GATE_MIN_EXPLICIT = 10
    gate = promotion_gate(candidate=report(severe_dcm_count=2), champion=report())
    reason = "refused: severe DCM count 2 is above the champion's 1"
    run = finished_run(champion, candidate=candidate_version(), gate=gate, reason=reason)
    page = run_page(carol_client, run)
    assert page.count('class="run-status ') == 1
    assert "Finished, not promoted: the gate refused it" in page
    assert not re.search(r">\s*(succeeded|failed)\s*<", page, re.IGNORECASE)
    assert '<span class="gate-verdict fail">refused</span>' in page


def test_the_banner_says_once_why_an_admin_decides(carol_client, champion, settings):
    settings.GATE_MIN_EXPLICIT = 10
    gate = promotion_gate(candidate=report(explicit_support=8), champion=report())
    run = finished_run(champion, candidate=candidate_version(), gate=gate)
    page = run_page(carol_client, run)
    banner = re.search(r'<div class="needs-admin".*?</div>', page, re.DOTALL)[0]
    text = " ".join(re.sub(r"<[^>]+>", "", banner).split())
    assert text == (
        "An admin decides: only 8 explicit test items (fewer than 10), too few for the gate to "
        "promote a candidate on its own. Its verdict below is advice."
    )
    assert page.lower().count("an admin decides") == 1
    assert page.count("only 8 explicit test items") == 1


def test_a_gate_judged_before_keeps_its_sentence_from_repeating(carol_client, champion):
    legacy = promotion_gate(candidate=report(), champion=report())
    # As gates said it before the sentence lost its tail.
    legacy["needs_admin"] = "only 3 explicit test items (fewer than 10): an admin decides"
    run = finished_run(champion, candidate=candidate_version(), gate=legacy)
    page = run_page(carol_client, run)
    assert page.lower().count("an admin decides") == 1


def test_starting_a_retrain_lands_on_its_run_page(carol_client, champion):
    response = carol_client.post(reverse("training:start"), {"mode": "mlp"})
    run = TrainingRun.objects.get()
    assert response.url == reverse("training:run", args=[run.pk])


def timed_run(mode: str, minutes: float, *, days_ago: int = 0) -> TrainingRun:
    run = TrainingRun.objects.create(mode=mode, state="succeeded", active=None, stage="done")
    queued = timezone.now() - timedelta(days=days_ago)
    TrainingRun.objects.filter(pk=run.pk).update(
        created_at=queued, finished_at=queued + timedelta(minutes=minutes)
    )
    return run


def test_a_mode_never_run_has_no_time_estimate(champion):
    assert selectors.training_duration_estimate(mode="full") == "no run yet to time it by"


def test_a_modes_time_is_the_median_of_its_last_three_runs(champion):
    for days_ago, minutes in ((4, 30), (3, 3), (2, 4), (1, 5)):  # the oldest is left out
        timed_run("mlp", minutes, days_ago=days_ago)
    timed_run("full", 50)
    failed = TrainingRun.objects.create(mode="mlp", state="failed", active=None)
    TrainingRun.objects.filter(pk=failed.pk).update(finished_at=timezone.now() + timedelta(hours=9))
    estimate = selectors.training_duration_estimate(mode="mlp")
    assert estimate == "about 4 min, from the last 3 runs"


def test_one_run_gives_an_estimate_from_the_last_run(champion):
    timed_run("full", 125)
    assert selectors.training_duration_estimate(mode="full") == "about 2.1 h, from the last run"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(20, "under a minute"), (61, "about 1 min"), (240, "about 4 min"), (7200, "about 2 h")],
)
def test_durations_are_said_as_an_admin_would(seconds, words):
    assert selectors.duration_words(seconds) == words


def test_each_mode_on_the_retraining_page_says_how_long_it_takes(carol_client, champion):
    timed_run("mlp", 4)
    page = carol_client.get(reverse("training:runs")).text
    estimates = dict(re.findall(r'data-mode="(\w+)">([^<]*)<', page))
    assert estimates["mlp"] == "about 4 min, from the last run"
    assert estimates["full"] == "no run yet to time it by"
