"""The champion and its bundle: which version rates, and its bundle loaded once per process."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from moderation.inference.models import ModelVersion
from rating_models.bundle import Bundle

log = logging.getLogger(__name__)

_loaded: dict[tuple[str, str], Bundle] = {}  # by version and bundle path
_lock = threading.Lock()


class NoChampion(RuntimeError):
    """No model version is champion yet: nothing can be rated."""


def champion() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION).first()


def bundle_for(version: ModelVersion) -> Bundle:
    """The version's bundle, loaded once per process. A worker that sees a new champion
    loads it on its next task, with no restart."""
    path = bundle_path(version)
    key = (version.version, str(path))
    with _lock:
        if key not in _loaded:
            _loaded.clear()  # one bundle in memory: the old champion is not needed any more
            _loaded[key] = Bundle.load(path, device=settings.RATING_DEVICE)
        return _loaded[key]


def champion_warm() -> ModelVersion | None:
    """Load the champion's bundle now, when a web process starts, so that no request pays for
    it (`/api/v1/rate/` rates within the request). A process that cannot (no champion yet, the
    database or the bundle unavailable) starts all the same and loads it on first use."""
    try:
        version = champion()
        if version is not None:
            bundle_for(version)
        return version
    except Exception:  # the site must come up; the first rating will say what is wrong
        log.warning("the champion's bundle was not loaded at start", exc_info=True)
        return None


def bundle_path(version: ModelVersion) -> Path:
    """The directory of the version's bundle."""
    path = Path(version.path)
    return path if path.is_absolute() else Path(settings.BUNDLE_DIR) / path
