"""The Celery app. Tasks are routed: `inference` and `training` to GPU workers, the rest to
`default` (settings.CELERY_TASK_ROUTES)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation.settings")

app = Celery("moderation")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _rates_items() -> bool:
    consumed = app.amqp.queues.consume_from or app.amqp.queues
    return "inference" in consumed and os.environ.get("WARM_CHAMPION", "1") == "1"


def _warm() -> None:
    """Load the champion's bundle before the first task, so that the first items rated after
    a worker starts do not wait for it (as each web process does at start)."""
    from django.db import connection

    from moderation.inference.bundles import champion_warm

    try:
        champion_warm()
    finally:
        connection.close()  # not kept across a fork, nor idle in a child


@worker_process_init.connect
def warm_pool_process(**kwargs: object) -> None:
    """A prefork child (production's pool) loads the champion as it starts."""
    if _rates_items():
        _warm()


@worker_ready.connect
def warm_solo_worker(sender: object = None, **kwargs: object) -> None:
    """A solo or threads worker runs its tasks in its own process: it loads the champion once
    it is ready (a prefork parent does not: its children do)."""
    pool = getattr(sender, "pool", None)
    if pool is not None and type(pool).__module__.endswith((".solo", ".thread")) and _rates_items():
        _warm()
