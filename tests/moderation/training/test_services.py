import io
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from moderation.inference.models import ModelVersion
from moderation.training import gate, registry, runs, selectors, services
from moderation.training.gate import promotion_gate
from moderation.training.models import Evaluation, TrainingRun
from rating_models.train import BundleConfig, train_bundle
from tests.moderation.training.conftest import labelled_item
from tests.rating_models.bundles import EXPLICIT, SAFE, lstm_bundle_config, toy_examples

pytestmark = pytest.mark.django_db

REPORT = {
    "severe_dcm_count": 1,
    "dcm_rate": 0.05,
    "macro_f1": 0.5,
    "explicit_support": 20,
    "models": {"voter": {}, "mlp": {}},
}


def report(**changes):
    return {**REPORT, **changes}


def test_the_gate_refuses_a_candidate_with_more_severe_down_class_errors(settings):
    gate = promotion_gate(candidate=report(severe_dcm_count=2), champion=report())
    assert not gate["passed"]
    failed = [c for c in gate["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["severe DCM count"]
    assert "above the champion's" in failed[0]["detail"]


def test_the_gate_allows_dcm_within_the_tolerance_and_refuses_beyond(settings):
    settings.GATE_DCM_TOLERANCE = 0.01
    assert promotion_gate(candidate=report(dcm_rate=0.059), champion=report())["passed"]
    assert not promotion_gate(candidate=report(dcm_rate=0.061), champion=report())["passed"]


def test_the_gate_refuses_a_macro_f1_drop_beyond_the_tolerance(settings):
    settings.GATE_F1_TOLERANCE = 0.01
    gate = promotion_gate(candidate=report(macro_f1=0.45), champion=report())
    assert not gate["passed"]
    assert promotion_gate(candidate=report(macro_f1=0.495), champion=report())["passed"]


def test_with_few_explicit_test_items_an_admin_decides(settings):
    settings.GATE_MIN_EXPLICIT = 10
    gate = promotion_gate(candidate=report(explicit_support=4), champion=report())
    assert gate["passed"] and gate["needs_admin"] == "only 4 explicit test items (fewer than 10)"


def test_test_split_labels_never_reach_training(labelled):
    train_ids = set(selectors.training_items().values_list("pk", flat=True))
    assert train_ids and all(i.split == "train" for i in labelled if i.pk in train_ids)
    assert not train_ids & set(selectors.test_items().values_list("pk", flat=True))


def test_blocked_and_superseded_labels_are_not_trained_on(champion):
    from moderation.review.decisions import label_create

    corrected = labelled_item("a nude woman", 1, split="train")
    label_create(item=corrected, level=8, moderator=None, origin="test")
    blocked = labelled_item("a cat", 1, split="train")
    label_create(item=blocked, level=32, moderator=None, origin="test")
    items = {i.pk: i.current_level for i in selectors.training_items()}
    assert items == {corrected.pk: 8}


def test_an_mlp_retrain_produces_a_candidate_judged_beside_the_champion(labelled, settings):
    settings.GATE_MIN_EXPLICIT = 0
    settings.GATE_F1_TOLERANCE = 1.0  # the gate must pass: this test is about the run
    settings.GATE_DCM_TOLERANCE = 1.0
    settings.GATE_SEVERE_TOLERANCE = 100
    champion = ModelVersion.objects.get(status="champion")
    run = runs.training_run_start()
    run = services.training_run_execute(run_id=run.pk)
    assert run.state == TrainingRun.State.SUCCEEDED, run.reason
    assert run.n_train == 24 and run.n_test == 24
    assert run.candidate.status == ModelVersion.Status.CHAMPION
    # What it learned from is kept, so that its live figures leave those items out.
    assert set(run.candidate.trained_items.values_list("item__split", flat=True)) == {"train"}
    assert run.candidate.trained_items.count() == 24
    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.FORMER
    assert Evaluation.objects.filter(model_version=run.candidate, data="test").exists()
    assert Evaluation.objects.filter(model_version=champion, data="test").exists()
    assert set(run.gate["candidate"]) == {"suggested", "voter", "mlp"}
    assert "promoted" in run.reason and run.stage == "done" and run.progress == 1.0


def test_a_candidate_that_fails_the_gate_stays_a_candidate_and_says_why(labelled, settings):
    settings.GATE_MIN_EXPLICIT = 0
    settings.GATE_F1_TOLERANCE = -2.0  # no candidate can pass
    champion = ModelVersion.objects.get(status="champion")
    run = services.training_run_execute(run_id=runs.training_run_start().pk)
    assert run.state == TrainingRun.State.SUCCEEDED
    assert run.candidate.status == ModelVersion.Status.CANDIDATE
    assert run.reason.startswith("refused: macro-F1")
    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.CHAMPION


def test_two_retrains_cannot_overlap(champion):
    runs.training_run_start()
    with pytest.raises(runs.TrainingBusy):
        runs.training_run_start(trigger="schedule")


def test_a_run_killed_mid_way_leaves_the_champion_and_frees_the_next_run(champion, settings):
    killed = runs.training_run_start()
    TrainingRun.objects.filter(pk=killed.pk).update(
        state="running",
        heartbeat_at=timezone.now() - timedelta(minutes=settings.TRAINING_STALE_MINUTES + 1),
    )
    nxt = runs.training_run_start()
    killed.refresh_from_db()
    assert killed.state == "failed" and "heartbeats" in killed.reason
    assert nxt.state == "queued"
    assert ModelVersion.objects.get(status="champion") == champion


def killed_run(settings) -> TrainingRun:
    """A run left "running" by a worker killed more than TRAINING_STALE_MINUTES ago."""
    run = runs.training_run_start()
    TrainingRun.objects.filter(pk=run.pk).update(
        state="running",
        heartbeat_at=timezone.now() - timedelta(minutes=settings.TRAINING_STALE_MINUTES + 1),
    )
    return run


def test_a_killed_runs_redelivered_message_fails_it_and_runs_nothing(champion, settings):
    killed = killed_run(settings)
    run = services.training_run_execute(run_id=killed.pk)
    assert run.state == "failed" and "heartbeats" in run.reason
    assert run.active is None and run.candidate is None
    assert ModelVersion.objects.get(status="champion") == champion


def test_a_redelivered_message_leaves_a_live_run_alone(champion):
    live = runs.training_run_start()
    TrainingRun.objects.filter(pk=live.pk).update(state="running", heartbeat_at=timezone.now())
    assert services.training_run_execute(run_id=live.pk).state == "running"


def test_the_periodic_check_fails_a_killed_run_whose_message_was_lost(champion, settings):
    killed = killed_run(settings)
    assert runs.retrain_if_enough_labels() is None  # too few labels to start another
    killed.refresh_from_db()
    assert killed.state == "failed" and killed.active is None


def test_a_failed_run_says_why_and_leaves_the_champion(champion):
    run = services.training_run_execute(run_id=runs.training_run_start().pk)
    assert run.state == TrainingRun.State.FAILED
    assert "need labelled items" in run.reason
    assert run.active is None
    assert ModelVersion.objects.get(status="champion") == champion


def test_a_cancelled_run_does_not_run(champion):
    run = runs.training_run_start()
    runs.training_run_cancel(run=run)
    run = services.training_run_execute(run_id=run.pk)
    assert run.state == "cancelled" and run.candidate is None


def test_a_cancelled_queued_run_frees_the_next_run_at_once(champion):
    run = runs.training_run_start()
    runs.training_run_cancel(run=run)
    assert runs.training_run_start().state == "queued"


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_while_running_holds_the_lock_until_its_worker_stops(labelled, monkeypatch):
    """The worker runs in a thread and is held inside its first stage (the real selection of
    training items, once it has been reached); the admin cancels meanwhile."""
    reached, resume = threading.Event(), threading.Event()
    select = selectors.training_items

    def held_in_the_data_stage():
        reached.set()
        assert resume.wait(30)
        return select()

    monkeypatch.setattr(services.selectors, "training_items", held_in_the_data_stage)
    run = runs.training_run_start()
    finished = []

    def worker():
        try:
            finished.append(services.training_run_execute(run_id=run.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert reached.wait(30)
        runs.training_run_cancel(run=run)
        run.refresh_from_db()
        assert (run.state, run.active) == ("cancelled", True)
        with pytest.raises(runs.TrainingBusy):  # its worker is still at work
            runs.training_run_start(trigger="schedule")
    finally:
        resume.set()
        thread.join(60)

    (stopped,) = finished
    assert (stopped.state, stopped.active, stopped.candidate) == ("cancelled", None, None)
    assert stopped.finished_at is not None
    assert ModelVersion.objects.filter(status="champion").count() == 1
    assert ModelVersion.objects.count() == 1
    assert runs.training_run_start().state == "queued"  # the lock is free once it stopped


def test_a_cancelled_run_whose_worker_died_stays_cancelled_and_frees_the_lock(champion, settings):
    run = runs.training_run_start()
    TrainingRun.objects.filter(pk=run.pk).update(state="running", heartbeat_at=timezone.now())
    runs.training_run_cancel(run=run)
    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=settings.TRAINING_STALE_MINUTES + 1)
    )
    nxt = runs.training_run_start()
    run.refresh_from_db()
    assert (run.state, run.active, run.reason) == ("cancelled", None, "cancelled by an admin")
    assert nxt.state == "queued"


def test_rollback_makes_an_earlier_version_champion_again(labelled, settings):
    settings.GATE_MIN_EXPLICIT = 0
    settings.GATE_F1_TOLERANCE = settings.GATE_DCM_TOLERANCE = 1.0
    settings.GATE_SEVERE_TOLERANCE = 100
    first = ModelVersion.objects.get(status="champion")
    run = services.training_run_execute(run_id=runs.training_run_start().pk)
    assert run.candidate.status == "champion"
    registry.promotion_run_now(version=first, kind="rollback")
    first.refresh_from_db()
    run.candidate.refresh_from_db()
    assert first.status == "champion" and run.candidate.status == "former"


def test_a_passing_candidate_with_too_few_explicit_test_items_waits_for_an_admin(
    labelled, settings
):
    settings.GATE_MIN_EXPLICIT = 1000  # far more X/XXX test items than exist
    settings.GATE_F1_TOLERANCE = settings.GATE_DCM_TOLERANCE = 1.0
    settings.GATE_SEVERE_TOLERANCE = 100
    first = ModelVersion.objects.get(status="champion")

    run = services.training_run_execute(run_id=runs.training_run_start().pk)

    assert run.state == "succeeded" and run.gate["passed"]
    assert run.gate["needs_admin"].endswith("explicit test items (fewer than 1000)")
    assert run.candidate.status == "candidate"
    assert ModelVersion.objects.get(status="champion") == first
    assert "waiting for an admin" in run.reason


def test_a_full_retrain_trains_every_expert_again_and_reports_each(labelled, settings):
    settings.GATE_MIN_EXPLICIT = 0
    # Enough training items that the hashed validation share (15%) is never empty: with the
    # fixture's 24 alone it sometimes is, and then the experts cannot train.
    for n in range(3, 9):
        for prompt in SAFE:
            labelled_item(f"{prompt} {n}", 1, split="train")
        for prompt in EXPLICIT:
            labelled_item(f"{prompt} {n}", 8, split="train")
    first = ModelVersion.objects.get(status="champion")
    run = runs.training_run_start(mode=TrainingRun.Mode.FULL)

    run = services.training_run_execute(run_id=run.pk)

    assert run.state == "succeeded", run.reason
    for name in ("tag_rules", "lstm", "lstm_tags"):
        assert f"training expert {name}" in run.log
    assert "training the MLP on the experts' out-of-fold outputs" in run.log
    candidate = run.candidate
    assert candidate.manifest["training_data"]["n_train"] > 0
    assert candidate.manifest["version"] != first.manifest["version"]
    # New experts: the candidate's LSTM weights are not the champion's.
    new_lstm = (Path(candidate.path) / "experts" / "lstm" / "model.safetensors").read_bytes()
    old_lstm = (Path(first.path) / "experts" / "lstm" / "model.safetensors").read_bytes()
    assert new_lstm != old_lstm


def test_the_champion_cannot_be_retired(champion):
    with pytest.raises(ValueError, match="cannot be retired"):
        registry.model_version_retire(version=champion)


def test_the_schedule_starts_a_retrain_only_with_enough_new_labels(
    champion, settings, django_user_model
):
    from moderation.review.decisions import label_create

    settings.RETRAIN_MIN_NEW_LABELS = 2
    moderator = django_user_model.objects.create_user("alice")
    item = labelled_item("a cat", 1, split="train")
    label_create(item=item, level=2, moderator=moderator)
    assert runs.retrain_if_enough_labels() is None
    label_create(item=item, level=4, moderator=moderator)
    run = runs.retrain_if_enough_labels()
    assert run is not None and run.trigger == "schedule"


@pytest.fixture(scope="session")
def tested_bundle_dir(tmp_path_factory):
    """A tiny bundle trained with test data: its manifest carries its test figures."""
    directory = tmp_path_factory.mktemp("tested") / "bundle"
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    train_bundle(
        toy_examples(), toy_examples(1, "v"), config=config, out=directory, test=toy_examples(1)
    )
    return directory


def test_a_bundle_registered_with_test_figures_shows_them_before_any_retrain(
    tested_bundle_dir, carol_client
):
    out = io.StringIO()
    call_command("register_bundle", str(tested_bundle_dir), "--promote", stdout=out)

    version = ModelVersion.objects.get()
    (evaluation,) = version.evaluations.all()
    manifest = json.loads((tested_bundle_dir / "manifest.json").read_text())
    assert (evaluation.data, evaluation.n) == ("test", manifest["test_metrics"]["n"])
    assert evaluation.report == manifest["test_metrics"]
    assert evaluation.fingerprint == manifest["test_data"]["fingerprint"]
    assert f"its figures on {evaluation.n} test items" in out.getvalue()
    assert gate.evaluation_create_from_manifest(version=version) is None  # once

    response = carol_client.get(reverse("dashboards:overview"))
    assert response.status_code == 200
    assert "No evaluation on the test split yet" not in response.text
    assert version.version in response.text
    detail = carol_client.get(reverse("dashboards:version", args=[version.version]))
    assert detail.status_code == 200


def test_a_bundle_without_test_figures_records_no_evaluation(champion):
    assert gate.evaluation_create_from_manifest(version=champion) is None
    assert not Evaluation.objects.exists()


def test_a_few_training_items_always_hold_one_out_for_early_stopping():
    """24 items all hashing above the validation share (2% of such sets do) used to leave the
    MLP no validation row, and the retrain failed."""
    import uuid

    above = []
    while len(above) < 24:
        uid = uuid.uuid4()
        if not selectors.is_validation(uid):
            above.append(uid)
    held = selectors.validation_split(above)
    assert sum(held) == 1
    nearest = min(above, key=selectors.validation_bucket)
    assert held[above.index(nearest)]
    assert selectors.validation_split(above[:1]) == [False]  # one item: nothing to hold out
