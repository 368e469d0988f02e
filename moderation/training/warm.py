"""Web processes load the bundles they will need before they need them.

At start a process loads the champion's bundle (`bundles.champion_warm`); then a daemon thread
checks every BUNDLE_WATCH_SECONDS for a promotion under way and loads the incoming bundle
while the worker is still rating the review queue with it, so that when the champion switches
no `/api/v1/rate/` request waits for a load.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from moderation.inference import bundles
from moderation.inference.models import ModelVersion
from moderation.training.models import Promotion

log = logging.getLogger(__name__)


def bundles_wanted() -> list[ModelVersion]:
    """The champion, and the version a promotion under way brings in."""
    incoming = [
        p.version
        for p in Promotion.objects.filter(active=True).select_related("version")
        if p.state != Promotion.State.QUEUED
    ]
    champion = bundles.champion()
    return [*incoming, *([champion] if champion else [])]


def bundles_warm() -> list[str]:
    """Load every wanted bundle this process lacks; returns the versions it loaded."""
    loaded = []
    for version in bundles_wanted():
        if bundles.bundle_loaded(version) is None:
            bundles.bundle_for(version)
            loaded.append(version.version)
    return loaded


def bundles_watch(interval: float | None = None) -> threading.Thread | None:
    """Start the watching thread (None when BUNDLE_WATCH_SECONDS is 0)."""
    interval = settings.BUNDLE_WATCH_SECONDS if interval is None else interval
    if interval <= 0:
        return None

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                close_old_connections()
                for version in bundles_warm():
                    log.info("loaded the bundle of %s in the background", version)
            except Exception:  # the next round tries again; requests load on first use
                log.warning("the bundle watch failed", exc_info=True)
            finally:
                connection.close()

    thread = threading.Thread(target=watch, name="bundle-watch", daemon=True)
    thread.start()
    return thread
