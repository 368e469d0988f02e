"""Rating items with the champion's bundle: predicting and storing predictions, and rating one
example within a request; the rating's dispatch lease and an item that fails alone."""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from moderation.audit.services import Action, audit_record
from moderation.dispatch import enqueue, send
from moderation.inference.bundles import (
    NoChampion,
    bundle_any_loaded,
    bundle_for,
    bundle_load_in_background,
    bundle_loaded,
    champion,
)
from moderation.inference.explanations import explanations_compute
from moderation.inference.models import ModelVersion, Prediction, RatingDispatch
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle, BundlePrediction
from rating_models.examples import Example
from rating_models.ratings import Rating

log = logging.getLogger(__name__)

PREDICT_ITEMS = "moderation.inference.tasks.predict_items"


class ItemUnreadable(Exception):
    """One item cannot be read as the models need it (its image file is missing, corrupt, not
    an image, a decompression bomb): it fails alone. `reason` says why, in a few words."""

    def __init__(self, item: MediaItem, reason: str) -> None:
        super().__init__(f"item {item.uid}: {reason}")
        self.reason = reason


def item_example(item: MediaItem) -> Example:
    """The item as the models see it; ItemUnreadable when its image cannot be read."""
    tags = None if item.tags is None else tuple((str(n), float(c)) for n, c in item.tags)
    return Example(
        id=str(item.uid),
        prompt=item.prompt,
        negative_prompt=item.negative_prompt,
        tags=tags,
        image=_item_image(item) if item.image else None,
        source=item.source,
    )


def _item_image(item: MediaItem) -> Image.Image:
    # Only a missing file is this item's fault: another storage error (permissions, a share
    # gone) would fail every item alike, so it propagates and the task retries later.
    try:
        with item.image.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ItemUnreadable(item, "the image file is missing") from None
    with warnings.catch_warnings():
        # Pillow only warns between its own cap and twice that: make every bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:  # reads the header only
                if opened.width * opened.height > settings.MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError(f"{opened.width}x{opened.height} pixels")
                return opened.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ItemUnreadable(item, f"the image is a decompression bomb ({error})") from None
        except UnidentifiedImageError:  # its message names a buffer's address: no use to read
            reason = "the image could not be read: cannot identify image file"
            raise ItemUnreadable(item, reason) from None
        except Exception as error:
            # Decoders raise OSError, SyntaxError, ValueError, EOFError, zlib and struct errors
            # for broken data (as in media.validation): each means this file cannot be read.
            raise ItemUnreadable(item, f"the image could not be read: {error}") from None


def predictions_create(*, item_ids: Sequence[int], version: ModelVersion | None = None) -> int:
    """Predict every listed item that has no prediction for the version yet; returns how many
    were written. Safe to run twice: the second run writes nothing.

    One item cannot sink its batch: an item that cannot be read (ItemUnreadable), or that the
    bundle cannot rate even alone, is marked failed with its reason and the others are stored.
    A failed item is not read again, by any batch, until an admin retries it (`rating_retry`).
    """
    version = version or champion()
    if version is None:
        raise NoChampion("no champion model version: register a bundle first")
    done = set(
        Prediction.objects.filter(model_version=version, item_id__in=item_ids).values_list(
            "item_id", flat=True
        )
    )
    items = list(
        MediaItem.objects.filter(pk__in=set(item_ids) - done)
        .filter(rating_dispatch__failed_at__isnull=True)  # no row, or not failed
        .order_by("pk")
    )
    if not items:
        return 0
    readable, failures = [], {}
    for item in items:
        try:
            readable.append((item, item_example(item)))
        except ItemUnreadable as unreadable:
            failures[item.pk] = unreadable.reason
    bundle = bundle_for(version)
    started = time.perf_counter()
    rated, unrated = _predict(bundle, readable) if readable else ([], {})
    failures |= unrated
    explanations = explanations_compute(
        bundle=bundle,
        rated=rated,
        examples={item.pk: example for item, example in readable},
        predict_seconds=time.perf_counter() - started,
    )
    rows = [
        _prediction_row(item, version, bundle, said, row, explanations.get(item.pk))
        for item, said, row in rated
    ]
    rated_ids = [item.pk for item, _, _ in rated]
    with transaction.atomic():
        # A concurrent worker may have written some meanwhile: the unique pair keeps one.
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        # Rated: nothing waits any more (the lease, or a failure an earlier try left).
        RatingDispatch.objects.filter(item_id__in=rated_ids).delete()
        _ratings_fail(failures)
        from moderation.review.claims import review_priorities_update

        review_priorities_update(item_ids=rated_ids, version=version)
    return len(rows)


def _predict(
    bundle: Bundle, readable: list[tuple[MediaItem, Example]]
) -> tuple[list[tuple[MediaItem, BundlePrediction, int]], dict[int, str]]:
    """Each item with its prediction and its row in it, and why the others were not rated.

    Should the batch fail, its items are rated one at a time, so that one item that breaks the
    bundle cannot sink the others: an item that fails alone has failed. When every one fails
    alone the bundle is at fault, not the items, and the batch's error is raised: the task
    fails, and the sweep queues them again once their lease has run out.
    """
    try:
        prediction = bundle.predict([example for _, example in readable])
        return [(item, prediction, n) for n, (item, _) in enumerate(readable)], {}
    except Exception as error:
        batch_error = error
    log.warning(
        "a batch of %d items failed (%s): rating them one at a time", len(readable), batch_error
    )
    rated, failures = [], {}
    for item, example in readable:
        try:
            rated.append((item, bundle.predict([example]), 0))
        except Exception as error:
            failures[item.pk] = f"the model could not rate it: {error}"
    if not rated:
        raise batch_error
    return rated, failures


def _ratings_fail(failures: dict[int, str]) -> None:
    if not failures:
        return
    for pk, reason in failures.items():
        log.warning("item %s failed and waits for an admin's retry: %s", pk, reason)
    limit, now = RatingDispatch._meta.get_field("failure").max_length, timezone.now()
    RatingDispatch.objects.bulk_create(
        [
            RatingDispatch(
                item_id=pk,
                failed_at=now,
                failure=reason if len(reason) <= limit else reason[: limit - 1] + "…",
            )
            for pk, reason in failures.items()
        ],
        update_conflicts=True,
        unique_fields=["item"],
        update_fields=["failed_at", "failure"],
    )


def _level(index: int) -> int | None:
    return None if index < 0 else Rating.from_index(int(index)).level


def _prediction_row(
    item: MediaItem,
    version: ModelVersion,
    bundle: Bundle,
    prediction: BundlePrediction,
    row: int,
    explanation: dict | None = None,
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
        auto_publish=prediction.publishes(row),
        explanation=explanation,
    )


def rate_now(example: Example) -> tuple[ModelVersion, BundlePrediction]:
    """Rate one example within the request (generation time): nothing is stored.

    No request waits for a bundle to load: if the champion switched before this process had
    loaded the new bundle (its watch loads it during the promotion; see training.warm), the
    bundle it holds rates, the answer names that version, and the new one loads meanwhile.
    Only a process that holds none at all (it started before any champion existed) loads it
    here."""
    version = champion()
    if version is None:
        raise NoChampion("no champion model version: register a bundle first")
    bundle = bundle_loaded(version)
    if bundle is None:
        held = bundle_any_loaded()
        if held is None:
            return version, bundle_for(version).predict([example])
        bundle_load_in_background(version)
        version, bundle = held
    return version, bundle.predict([example])


def items_unpredicted(version: ModelVersion) -> QuerySet[MediaItem]:
    """The items the version has no prediction for."""
    predicted = Prediction.objects.filter(item=OuterRef("pk"), model_version=version)
    return MediaItem.objects.filter(~Exists(predicted))


def items_awaiting_prediction(
    *, version: ModelVersion, near: Sequence[int], limit: int
) -> list[int]:
    """Up to `limit` items other than `near` whose rating was queued and still waits (a
    dispatch row, not failed) and that the version has not rated, oldest first.

    A task queued for one new item rates these along with it: items arriving together are
    rated in batches, a lone item at once, and a backlog (after a restart, or an import)
    drains in full batches whichever message comes first, since a message whose own item is
    done still takes the oldest that wait. The dispatch table holds only the items still
    waiting or failed, so the query stays small however large the item table. Items that were
    never queued (an item the sweep has not reached) are rated by the sweep's own batches.
    """
    if limit <= 0:
        return []
    rated = Prediction.objects.filter(item_id=OuterRef("item_id"), model_version=version)
    waiting = (
        RatingDispatch.objects.filter(failed_at__isnull=True)  # a failed one waits for a retry
        .exclude(item_id__in=near)
        .filter(~Exists(rated))
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )
    return list(waiting[:limit])


def items_due(version: ModelVersion) -> QuerySet[MediaItem]:
    """The items the sweep queues: not rated by the version, not failed, and never queued or
    queued longer than RATING_LEASE_SECONDS ago (their message was lost, or the broker refused
    it). The dispatch table holds only the items still waiting, so the anti-join stays small."""
    cutoff = timezone.now() - timedelta(seconds=settings.RATING_LEASE_SECONDS)
    held = RatingDispatch.objects.filter(item=OuterRef("pk")).filter(
        Q(failed_at__isnull=False) | Q(dispatched_at__gte=cutoff)
    )
    return items_unpredicted(version).filter(~Exists(held))


def ratings_dispatch(*, item_ids: Sequence[int], batch_size: int | None = None) -> int:
    """Queue the items' rating now, in messages of `batch_size` (INFERENCE_BATCH_SIZE), each
    batch stamped first so that no sweep doubles its message during the lease. Returns how
    many items were queued: at the first batch the broker refuses, its stamp is removed and
    the rest wait for the next sweep."""
    size = batch_size or settings.INFERENCE_BATCH_SIZE
    for start in range(0, len(item_ids), size):
        batch = list(item_ids[start : start + size])
        RatingDispatch.objects.stamp(item_ids=batch)
        if not send(PREDICT_ITEMS, batch):
            RatingDispatch.objects.unstamp(item_ids=batch)
            return start
    return len(item_ids)


@transaction.atomic
def rating_retry(*, item: MediaItem, actor: AbstractBaseUser | None = None) -> bool:
    """An admin's retry of a failed item: the failure is cleared (audited, with the reason it
    had) and the item queued once the transaction commits; False when the item had not
    failed, and nothing is queued."""
    failed = (
        RatingDispatch.objects.select_for_update()
        .filter(item=item, failed_at__isnull=False)
        .first()
    )
    if failed is None:
        return False
    RatingDispatch.objects.filter(pk=failed.pk).update(failed_at=None, failure="")
    audit_record(
        action=Action.RATING_RETRY, actor=actor, item=item, old=failed.failure, new="queued"
    )
    RatingDispatch.objects.stamp(item_ids=[item.pk])

    def sent(queued: bool) -> None:
        if not queued:  # the next sweep queues it
            RatingDispatch.objects.unstamp(item_ids=[item.pk])

    enqueue(PREDICT_ITEMS, [item.pk], sent=sent)
    return True
