"""Celery beat's periodic tasks live in the database, and an admin's edit of them stays."""

from __future__ import annotations

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from moderation.celery import app
from moderation.schedules import LABEL_ERRORS, periodic_task_every, periodic_tasks_ensure

pytestmark = pytest.mark.django_db


def test_migrate_creates_the_sweep_and_the_retrain_check_with_the_configured_intervals(settings):
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("interval")}

    sweep, check = tasks["sweep-unpredicted"], tasks["retrain-when-labels-arrive"]
    assert sweep.task == "moderation.inference.tasks.sweep_unpredicted"
    assert check.task == "moderation.training.tasks.retrain_if_enough_labels"
    assert (sweep.interval.every, sweep.interval.period) == (settings.SWEEP_SECONDS, "seconds")
    assert check.interval.every == settings.RETRAIN_CHECK_SECONDS
    assert sweep.enabled and check.enabled
    live = tasks["record-live-figures"]
    assert live.task == "moderation.training.tasks.record_live_figures"
    assert live.interval.every == settings.LIVE_FIGURES_SECONDS


@pytest.mark.django_db(transaction=True)  # the scheduler closes the connections it finds
def test_an_admins_edit_survives_the_next_migrate_and_beat_starting():
    task = PeriodicTask.objects.get(name="sweep-unpredicted")
    task.interval = IntervalSchedule.objects.create(every=42, period=IntervalSchedule.SECONDS)
    task.save()

    assert periodic_tasks_ensure() == []  # what `migrate` runs afterwards
    DatabaseScheduler(app=app)  # what beat does when it starts: its schedule from the database

    task = PeriodicTask.objects.select_related("interval").get(name="sweep-unpredicted")
    assert task.interval.every == 42
    assert "sweep-unpredicted" in DatabaseScheduler(app=app).schedule


def test_a_deleted_periodic_task_comes_back_at_the_next_migrate():
    PeriodicTask.objects.filter(name="retrain-when-labels-arrive").delete()
    assert periodic_tasks_ensure() == ["retrain-when-labels-arrive"]


def test_the_retraining_page_says_how_often_the_label_error_pass_runs_as_beat_has_it(
    carol_client,
):
    """The sentence follows the periodic task an admin may have edited, not the setting."""
    task = PeriodicTask.objects.get(name=LABEL_ERRORS)
    assert periodic_task_every(LABEL_ERRORS) == task.interval.every  # seconds, as migrated
    task.interval, _ = IntervalSchedule.objects.get_or_create(
        every=6, period=IntervalSchedule.HOURS
    )
    task.save()
    page = " ".join(carol_client.get("/training/").content.decode().split())
    assert "It also runs on its own every 6 hours." in page

    task.enabled = False
    task.save()
    assert periodic_task_every(LABEL_ERRORS) is None
    page = " ".join(carol_client.get("/training/").content.decode().split())
    assert "It also runs on no schedule: its periodic task is disabled." in page
