"""Rating items with the champion bundle: loading it, predicting, storing predictions."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from PIL import Image

from moderation.audit.services import Action, audit_record
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle, BundlePrediction, read_manifest
from rating_models.examples import Example
from rating_models.ratings import Rating

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


@transaction.atomic
def model_version_register(*, path: str | Path, promote: bool = False) -> ModelVersion:
    """Record a bundle directory as a model version (idempotent by bundle version).

    The bundle is loaded first: a corrupt or incompatible bundle never becomes a version.
    """
    # Stored absolute: a relative path would later be read against BUNDLE_DIR by the workers.
    path = Path(path).resolve()
    Bundle.load(path)
    manifest = read_manifest(path)
    version, _ = ModelVersion.objects.get_or_create(
        version=manifest["version"], defaults={"path": str(path), "manifest": manifest}
    )
    if promote and version.status != ModelVersion.Status.CHAMPION:
        model_version_promote(version=version)
    return version


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, actor: AbstractBaseUser | None = None, reason: str = ""
) -> ModelVersion:
    """Make the version the champion; the one before becomes a former champion (an admin may
    roll back to it). Each change is audited (`actor` None: the system, a retrain's gate)."""
    for old in ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.CHAMPION):
        model_version_status_set(version=old, status=ModelVersion.Status.FORMER, actor=actor)
    # The first promotion's time; every later one (a rollback) is in the audit trail.
    version.promoted_at = version.promoted_at or timezone.now()
    return model_version_status_set(
        version=version, status=ModelVersion.Status.CHAMPION, actor=actor, reason=reason
    )


def model_version_status_set(
    *, version: ModelVersion, status: str, actor: AbstractBaseUser | None, reason: str = ""
) -> ModelVersion:
    """Change a version's status and write its audit row (old → new); no change, no row."""
    old = version.status
    if old == status:
        return version
    version.status = status
    version.save(update_fields=["status", "promoted_at"])
    audit_record(
        action=Action.MODEL_STATUS,
        actor=actor,
        model_version=version,
        old=old,
        new=status,
        reason=reason,
    )
    return version


def item_example(item: MediaItem) -> Example:
    """The item as the models see it."""
    image = None
    if item.image:
        with item.image.open("rb") as handle, Image.open(io.BytesIO(handle.read())) as opened:
            image = opened.convert("RGB")
    tags = None if item.tags is None else tuple((str(n), float(c)) for n, c in item.tags)
    return Example(
        id=str(item.uid),
        prompt=item.prompt,
        negative_prompt=item.negative_prompt,
        tags=tags,
        image=image,
        source=item.source,
    )


def predictions_create(*, item_ids: Sequence[int], version: ModelVersion | None = None) -> int:
    """Predict every listed item that has no prediction for the version yet; returns how many
    were written. Safe to run twice: the second run writes nothing."""
    version = version or champion()
    if version is None:
        raise NoChampion("no champion model version: register a bundle first")
    done = set(
        Prediction.objects.filter(model_version=version, item_id__in=item_ids).values_list(
            "item_id", flat=True
        )
    )
    items = list(MediaItem.objects.filter(pk__in=set(item_ids) - done).order_by("pk"))
    if not items:
        return 0
    bundle = bundle_for(version)
    prediction = bundle.predict([item_example(i) for i in items])
    rows = [_prediction_row(item, version, bundle, prediction, n) for n, item in enumerate(items)]
    with transaction.atomic():
        # A concurrent worker may have written some meanwhile: the unique pair keeps one.
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        from moderation.review.claims import review_priorities_update

        review_priorities_update(item_ids=[i.pk for i in items], version=version)
    return len(rows)


def _level(index: int) -> int | None:
    return None if index < 0 else Rating.from_index(int(index)).level


def _prediction_row(
    item: MediaItem, version: ModelVersion, bundle: Bundle, prediction: BundlePrediction, row: int
) -> Prediction:
    experts, features = {}, []
    for name, output in prediction.experts.items():
        abstained = bool(output.abstain[row])
        experts[name] = {
            "rating": None if abstained else _level(output.ratings[row]),
            "probs": None if abstained else [round(float(p), 5) for p in output.probs[row]],
        }
        features.append(output.features[row].astype(np.float16))
    return Prediction(
        item=item,
        model_version=version,
        experts=experts,
        voter_rating=_level(prediction.voter[row]),
        mlp_rating=_level(prediction.mlp[row]),
        mlp_probs=[round(float(p), 5) for p in prediction.mlp_probs[row]],
        suggested_rating=_level(prediction.suggested[row]),
        flagged=bool(prediction.flagged[row]),
        features=np.concatenate(features).tobytes(),
        mlp_experts=prediction.mlp_experts(row),
    )


def rate_now(example: Example) -> tuple[ModelVersion, BundlePrediction]:
    """Rate one example within the request (generation time): nothing is stored."""
    version = champion()
    if version is None:
        raise NoChampion("no champion model version: register a bundle first")
    return version, bundle_for(version).predict([example])


def items_unpredicted(version: ModelVersion) -> QuerySet[MediaItem]:
    """The items the version has no prediction for."""
    predicted = Prediction.objects.filter(item=OuterRef("pk"), model_version=version)
    return MediaItem.objects.filter(~Exists(predicted))


def items_awaiting_prediction(
    *, version: ModelVersion, near: Sequence[int], limit: int
) -> list[int]:
    """Up to `limit` items other than `near` that were received about the same time (ids
    within a few batches of theirs) and that the version has not predicted yet, oldest first.

    A task queued for one new item rates these along with it, so that items arriving together
    are rated in batches while a lone item is rated at once. The id window keeps the query
    to a short index range however large the table; an item it misses is rated by its own
    task, or by the sweep.
    """
    if limit <= 0 or not near:
        return []
    window = 4 * settings.INFERENCE_BATCH_SIZE
    waiting = (
        items_unpredicted(version)
        .filter(pk__gte=min(near) - window, pk__lte=max(near) + window)
        .exclude(pk__in=near)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return list(waiting[:limit])
