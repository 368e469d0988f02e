"""The stages a run reports, and the list the run page shows: the same stages, in the same
order, for every mode, with real runs on the tiny champion."""

import re

import pytest
from django.urls import reverse

from moderation.training import candidates, runs, selectors, services, stages
from moderation.training.models import TrainingRun
from tests.moderation.training.conftest import labelled_item
from tests.rating_models.bundles import EXPLICIT, SAFE

pytestmark = pytest.mark.django_db


@pytest.fixture
def reported(monkeypatch) -> list[tuple[str, float]]:
    """The (stage, progress) pairs the run reports, as it reports them: `run_progress` still
    runs, this only listens."""
    heard: list[tuple[str, float]] = []
    report = services.run_progress

    def listen(run_id: int, *, stage: str, progress: float, line: str) -> None:
        heard.append((stage, progress))
        report(run_id, stage=stage, progress=progress, line=line)

    monkeypatch.setattr(services, "run_progress", listen)
    monkeypatch.setattr(candidates, "run_progress", listen)
    return heard


def unpredicted_test_items() -> None:
    """Labelled test items the champion has not rated yet: the run predicts them itself,
    which is a stage of its own."""
    for n, prompt in enumerate([*SAFE, *EXPLICIT]):
        labelled_item(f"{prompt} unrated {n}", 1 if prompt in SAFE else 8, split="test")


def run_once(mode: str, **start) -> TrainingRun:
    run = services.training_run_execute(run_id=runs.training_run_start(mode=mode, **start).pk)
    assert run.state == "succeeded", run.reason
    return run


def stages_shown(client, run: TrainingRun) -> list[str]:
    """The stages the run page lists, top to bottom."""
    page = client.get(reverse("training:run", args=[run.pk])).text
    listed = page[page.index('class="run-stages"') : page.index("</ol>")]
    return re.findall(r'data-stage="(\w+)"', listed)


def assert_in_the_order_shown(reported: list[tuple[str, float]], shown: list[str]) -> None:
    seen = [stage for stage, _ in reported]
    assert seen[-1] == stages.DONE
    course = [stage for k, stage in enumerate(seen[:-1]) if k == 0 or stage != seen[k - 1]]
    # Each stage once, and in the page's order: never back to an earlier one.
    assert course == [stage for stage in shown if stage in course], course
    progress = [p for _, p in reported]
    assert progress == sorted(progress), "the bar went backwards"


def test_an_mlp_retrain_reports_its_stages_in_the_order_the_page_shows(
    labelled, reported, settings, carol_client
):
    settings.AUTO_PROMOTE = False
    unpredicted_test_items()
    run = run_once(TrainingRun.Mode.MLP)
    shown = stages_shown(carol_client, run)
    assert shown == list(stages.ORDER["mlp"])
    assert_in_the_order_shown(reported, shown)
    # The test items' stored outputs are collected with the rest, before the MLP trains.
    assert [s for s, _ in reported].index("mlp") > max(
        k for k, (s, _) in enumerate(reported) if s == "features"
    )


def test_a_full_retrain_reports_its_stages_in_the_order_the_page_shows(
    labelled, reported, settings, carol_client
):
    settings.AUTO_PROMOTE = False
    settings.GATE_MIN_EXPLICIT = 0
    for n in range(3, 9):  # enough training items that the validation share is never empty
        for prompt in SAFE:
            labelled_item(f"{prompt} {n}", 1, split="train")
        for prompt in EXPLICIT:
            labelled_item(f"{prompt} {n}", 8, split="train")
    run = run_once(TrainingRun.Mode.FULL)
    shown = stages_shown(carol_client, run)
    assert shown == list(stages.ORDER["full"])
    assert_in_the_order_shown(reported, shown)
    assert {"experts", "features", "mlp"} <= {s for s, _ in reported}


def test_a_recalibration_reports_its_stages_in_the_order_the_page_shows(
    bounded_champion, reported, settings, carol_client
):
    settings.AUTO_PROMOTE = False
    unpredicted_test_items()
    run = run_once(TrainingRun.Mode.RECALIBRATE, alpha=0.2)
    shown = stages_shown(carol_client, run)
    assert shown == list(stages.ORDER["cal"])
    assert_in_the_order_shown(reported, shown)
    assert "calibration" in {s for s, _ in reported}


def test_a_finished_runs_stages_are_all_done(champion):
    run = TrainingRun.objects.create(state="succeeded", active=None, stage="done", progress=1.0)
    assert {row["state"] for row in selectors.run_stage_list(run)} == {"done"}


def test_a_failed_run_shows_the_stage_it_stopped_at(champion, carol_client):
    run = TrainingRun.objects.create(state="failed", active=None, stage="mlp", reason="boom")
    rows = {row["key"]: row["state"] for row in selectors.run_stage_list(run)}
    assert rows == {
        "data": "done",
        "features": "done",
        "mlp": "stopped",
        "saving": "next",
        "evaluation": "next",
        "gate": "next",
    }
    page = carol_client.get(reverse("training:run", args=[run.pk])).text
    assert "Training the MLP <span" in page and "(stopped here)" in page


def test_a_queued_run_waits_for_a_worker(champion):
    run = runs.training_run_start()
    assert selectors.stage_name(run.stage) == "Waiting for a worker"
    assert {row["state"] for row in selectors.run_stage_list(run)} == {"next"}
