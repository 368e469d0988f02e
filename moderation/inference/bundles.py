"""The champion and its bundle: which version rates, and its bundle loaded once per process."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from moderation.inference.models import ModelVersion
from rating_models.bundle import Bundle

log = logging.getLogger(__name__)

# At most two bundles per process: the champion's, and the one a promotion brings in (loaded in
# the background before the switch) or the one it replaced. Oldest use evicted first.
KEPT = 2
_loaded: dict[tuple[str, str], tuple[ModelVersion, Bundle]] = {}  # by version and bundle path
_lock = threading.Lock()  # held only to read or change `_loaded`, never during a load
_loading = threading.Lock()  # one load at a time in a process


class NoChampion(RuntimeError):
    """No model version is champion yet: nothing can be rated."""


def champion() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION).first()


def _key(version: ModelVersion) -> tuple[str, str]:
    return (version.version, str(bundle_path(version)))


def bundle_loaded(version: ModelVersion) -> Bundle | None:
    """The version's bundle if this process has loaded it, without loading it."""
    with _lock:
        entry = _loaded.get(_key(version))
    return None if entry is None else entry[1]


def bundle_for(version: ModelVersion) -> Bundle:
    """The version's bundle, loaded once per process. A worker that sees a new champion
    loads it on its next task, with no restart; a web process has usually loaded it in the
    background already (`moderation.training.warm`). Threads that need a bundle already
    loaded never wait for another's load."""
    key = _key(version)
    with _lock:
        if key in _loaded:
            _loaded[key] = _loaded.pop(key)  # most recently used last
            return _loaded[key][1]
    with _loading:
        with _lock:
            if key in _loaded:  # another thread loaded it meanwhile
                return _loaded[key][1]
        bundle = Bundle.load(bundle_path(version), device=settings.RATING_DEVICE)
        with _lock:
            _loaded[key] = (version, bundle)
            while len(_loaded) > KEPT:
                del _loaded[next(iter(_loaded))]
        return bundle


def bundle_any_loaded() -> tuple[ModelVersion, Bundle] | None:
    """The most recently used bundle this process holds, with its version, or None."""
    with _lock:
        return next(reversed(_loaded.values()), None)


_background: set[tuple[str, str]] = set()  # loads started by bundle_load_in_background


def bundle_load_in_background(version: ModelVersion) -> threading.Thread | None:
    """Start loading the version's bundle in a daemon thread (errors are logged); None when
    such a load is already under way."""
    key = _key(version)
    with _lock:
        if key in _background:
            return None
        _background.add(key)

    def load() -> None:
        try:
            bundle_for(version)
        except Exception:
            log.warning("the bundle of %s did not load", version.version, exc_info=True)
        finally:
            with _lock:
                _background.discard(key)

    thread = threading.Thread(target=load, name=f"load-{version.version}", daemon=True)
    thread.start()
    return thread


def champion_warm() -> ModelVersion | None:
    """Load the champion's bundle now, when a web process starts, so that no request pays for
    it (`/api/v1/rate/` rates within the request). A process that cannot (no champion yet, the
    database or the bundle unavailable) starts all the same and loads it on first use."""
    try:
        version = champion()
        if version is not None:
            bundle_for(version)
            log.info("loaded the champion's bundle (%s) at start", version.version)
        return version
    except Exception:  # the site must come up; the first rating will say what is wrong
        log.warning("the champion's bundle was not loaded at start", exc_info=True)
        return None


def bundle_path(version: ModelVersion) -> Path:
    """The directory of the version's bundle."""
    path = Path(version.path)
    return path if path.is_absolute() else Path(settings.BUNDLE_DIR) / path
