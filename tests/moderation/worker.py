"""A real Celery worker process for tests, on a real broker, sharing the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from moderation.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def empty_redis(url: str) -> str:
    """`url`, its Redis database emptied: messages left by an earlier run name rows that do
    not exist. Fails the test when Redis is not running."""
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.ConnectionError:
        pytest.fail(f"Redis does not answer at {url}")
    return url


@contextlib.contextmanager
def broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at `url` (tests otherwise queue to memory)."""
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    celery_app._after_fork()  # drop the connection and producer pools made for the old URL
    try:
        yield
    finally:
        celery_app.conf.broker_url = previous
        celery_app._after_fork()


@contextlib.contextmanager
def worker(
    broker_url: str,
    *,
    queues: str = "inference,default",
    env: dict[str, str] | None = None,
    app: str = "moderation",
    pool: str = "solo",
) -> Iterator[subprocess.Popen]:
    """A worker subprocess; `env` adds settings it reads from the environment (e.g. the gate's).

    With `--pool solo` it runs tasks in its own process, so `kill(process)` kills it mid-task;
    `pool="prefork"` runs them in one child process, as production workers do.
    `app` names another Celery app module, e.g. `tests.moderation.crashing`.
    """
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TEST_DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            if connection.vendor == "postgresql"
            else f"sqlite:///{db['NAME']}"
        ),
        "TEST_CELERY_BROKER_URL": broker_url,
        "TEST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "TEST_BUNDLE_DIR": str(settings.BUNDLE_DIR),
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queues,
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "info",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no warm shutdown, no message handed back to the broker, nothing flushed."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 90, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
