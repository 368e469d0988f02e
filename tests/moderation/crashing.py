"""The project's Celery app with a pause inside one function, to kill a worker mid-task.

`celery -A tests.moderation.crashing worker` with, in its environment,
PAUSE_IN=module:attribute (a function, or Class.method), PAUSE_AT=n (1 by default) and
PAUSE_MARKER=path: the n-th call writes the marker (the id of the process that paused) and
sleeps instead of returning, so a test that sees the marker knows where the worker is when it
kills it. It pauses once: a pool process started after the kill finds the marker and goes on.
Without PAUSE_IN it is the project's app unchanged.
"""

from __future__ import annotations

import functools
import importlib
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_init

from moderation.celery import app

__all__ = ["app"]


@worker_init.connect
def _pause(**kwargs: Any) -> None:
    target = os.environ.get("PAUSE_IN")
    if not target:
        return
    import django

    django.setup()  # the target may import models
    module_name, path = target.split(":")
    *owner_path, name = path.split(".")
    owner: Any = importlib.import_module(module_name)
    for part in owner_path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    pause_at = int(os.environ.get("PAUSE_AT", "1"))
    marker = Path(os.environ["PAUSE_MARKER"])
    calls = 0

    @functools.wraps(original)
    def paused(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == pause_at and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(3600)  # until the test kills the process
        return original(*args, **kwargs)

    setattr(owner, name, paused)
