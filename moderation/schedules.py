"""The periodic tasks Celery beat runs, kept in the database so admins can edit them.

django-celery-beat's scheduler writes every entry of `CELERY_BEAT_SCHEDULE` over its database
row each time beat starts, which would undo an admin's edit at the next restart. The entries
are created here instead, once, after `migrate`, with their intervals from the settings
(`SWEEP_SECONDS`, `RETRAIN_CHECK_SECONDS`, `LIVE_FIGURES_SECONDS`,
`LABEL_ERRORS_SECONDS`); after that the admin's
Periodic tasks page is where they change, and no restart or migration resets them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

LIVE_FIGURES = "record-live-figures"
LABEL_ERRORS = "find-label-errors"

PERIODIC_TASKS = {
    # What a broker lost or never got: every item without a champion prediction.
    "sweep-unpredicted": ("moderation.inference.tasks.sweep_unpredicted", "SWEEP_SECONDS"),
    # A retrain once enough new training-split labels exist.
    "retrain-when-labels-arrive": (
        "moderation.training.tasks.retrain_if_enough_labels",
        "RETRAIN_CHECK_SECONDS",
    ),
    # The champion's figures on live labels, kept: the dashboards' live trend.
    LIVE_FIGURES: (
        "moderation.training.tasks.record_live_figures",
        "LIVE_FIGURES_SECONDS",
    ),
    # Likely label errors (confident learning) sent to a second look.
    LABEL_ERRORS: ("moderation.review.tasks.find_label_errors", "LABEL_ERRORS_SECONDS"),
}


def periodic_task_every(name: str) -> float | None:
    """How often beat runs the periodic task `name`, in seconds: its interval as an admin may
    have changed it, else its setting's value (before `migrate` created it, or when it runs on
    a crontab); None when an admin disabled it."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.select_related("interval").filter(name=name).first()
    if task is not None and not task.enabled:
        return None
    if task is None or task.interval is None:
        return float(getattr(settings, PERIODIC_TASKS[name][1]))
    return timedelta(**{task.interval.period: task.interval.every}).total_seconds()


def periodic_tasks_ensure(**kwargs: Any) -> list[str]:
    """Create each periodic task that does not exist yet (a post_migrate receiver); an
    existing one is left as it is. Returns the names created."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    using = kwargs.get("using", "default")
    created = []
    for name, (task, setting) in PERIODIC_TASKS.items():
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue
        every = max(1, round(getattr(settings, setting)))
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=every, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).create(name=name, task=task, interval=interval)
        created.append(name)
    return created


INTERVAL_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def interval_words(seconds: float) -> tuple[str, str]:
    """An interval as (how long, how often): ("a day", "every day"), ("6 hours", "every 6
    hours"), ("90 seconds", "every 90 seconds")."""
    seconds = max(1, round(seconds))
    unit, size = next((u, n) for u, n in INTERVAL_UNITS if seconds % n == 0)
    count = seconds // size
    if count == 1:
        return f"{'an' if unit == 'hour' else 'a'} {unit}", f"every {unit}"
    return f"{count} {unit}s", f"every {count} {unit}s"
