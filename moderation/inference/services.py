"""Rating items with the champion's bundle: predicting and storing predictions, and rating one
example within a request."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from PIL import Image

from moderation.inference.bundles import NoChampion, bundle_for, champion
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle, BundlePrediction
from rating_models.examples import Example
from rating_models.ratings import Rating


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
