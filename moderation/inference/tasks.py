"""Inference tasks, routed to the `inference` queue. Each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from moderation.inference import bundles, services


@shared_task(
    acks_late=True,
    # Not about one item: an item that cannot be read fails alone, inside the service. An
    # OSError that reaches here (the bundle's files, the storage itself) would fail any batch.
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def predict_items(item_ids: list[int], gather: bool = False) -> int:
    """Predict the items with the champion, in one batch; idempotent, so a redelivered message
    is harmless. `gather`: with the items received beside them that still wait (a new item's
    task), up to INFERENCE_BATCH_SIZE; their own tasks then find them done. Gathered items keep
    their own dispatch stamps: by the task's end each is rated or failed, or, if the worker
    died, left to the sweep."""
    version = bundles.champion()
    if version is None:
        return 0  # the sweep queues them again once a champion exists
    if gather:
        item_ids = [
            *item_ids,
            *services.items_awaiting_prediction(
                version=version,
                near=item_ids,
                limit=settings.INFERENCE_BATCH_SIZE - len(item_ids),
            ),
        ]
    return services.predictions_create(item_ids=item_ids, version=version)


@shared_task(acks_late=True)
def sweep_unpredicted(batch_size: int | None = None) -> int:
    """Queue the items that have no prediction from the champion and whose rating is not
    already queued (within its lease) nor failed: covers a broker that was down at ingestion
    or a message it lost, without doubling the messages still waiting. Returns how many items
    were queued; with the broker unreachable it stops, and the next sweep goes on."""
    version = bundles.champion()
    if version is None:
        return 0
    ids = list(services.items_due(version).order_by("pk").values_list("pk", flat=True))
    return services.ratings_dispatch(item_ids=ids, batch_size=batch_size)
