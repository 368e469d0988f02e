"""Queueing Celery tasks by name, once the caller's transaction has committed.

Services queue work through here instead of importing their app's `tasks` module, so imports
run one way: tasks call services, services never import tasks. A task is named by its dotted
path and sent with `.delay`, so settings.CELERY_TASK_ROUTES and CELERY_TASK_ALWAYS_EAGER apply
as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)


def send(task: str, *args: Any, **kwargs: Any) -> bool:
    """Send the task now; False (logged) when the broker cannot be reached. Work already stored
    must not fail because the broker is down: the periodic sweeps queue it again."""
    module, _, name = task.rpartition(".")
    celery_task = getattr(import_module(module), name)  # a wrong name raises, never logs
    try:
        celery_task.delay(*args, **kwargs)
    except Exception as error:  # kombu raises OperationalError, socket errors, ...
        log.warning("could not queue %s%r: %s", task, args, error)
        return False
    return True


def enqueue(
    task: str, *args: Any, sent: Callable[[bool], None] | None = None, **kwargs: Any
) -> None:
    """Send the task once the current transaction commits (at once outside one), so a worker
    never looks for rows it cannot see yet and a rolled-back write queues nothing. `sent` is
    called with whether the broker took it."""

    def send_on_commit() -> None:
        queued = send(task, *args, **kwargs)
        if sent is not None:
            sent(queued)

    transaction.on_commit(send_on_commit)
