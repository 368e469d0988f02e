"""Inference tasks, routed to the `inference` queue. Each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db.models import Exists, OuterRef

from moderation.inference import services
from moderation.inference.models import Prediction
from moderation.media.models import MediaItem


@shared_task(
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def predict_items(item_ids: list[int]) -> int:
    """Predict the items with the champion; idempotent, so a redelivered message is harmless."""
    try:
        return services.predictions_create(item_ids=item_ids)
    except services.NoChampion:
        return 0  # the sweep queues them again once a champion exists


@shared_task(acks_late=True)
def sweep_unpredicted(batch_size: int = 256) -> int:
    """Queue every item that has no prediction from the champion: covers a broker that was
    down at ingestion or a message it lost."""
    version = services.champion()
    if version is None:
        return 0
    missing = (
        MediaItem.objects.filter(
            ~Exists(Prediction.objects.filter(item=OuterRef("pk"), model_version=version))
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ids = list(missing)
    for start in range(0, len(ids), batch_size):
        predict_items.delay(ids[start : start + batch_size])
    return len(ids)
