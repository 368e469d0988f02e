"""Ingestion: every way an item arrives (API, corpus import, Civitai import) goes through here."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q

from moderation.dispatch import enqueue
from moderation.inference.models import RatingDispatch
from moderation.media.models import ApiClient, MediaItem
from moderation.media.validation import (
    NormalisedImage,
    image_normalise,
    label_clean,
    metadata_clean,
    short_text_clean,
    split_clean,
    split_for,
    tags_clean,
    text_clean,
)
from moderation.review.decisions import label_create
from moderation.review.models import ReviewState

__all__ = ["item_create", "split_for"]


def item_create(
    *,
    image: bytes | None = None,
    prompt: str = "",
    negative_prompt: str = "",
    tags: list | None = None,
    source: str = "",
    external_id: str = "",
    metadata: dict | None = None,
    label: int | str | None = None,
    label_origin: str = "import",
    split: str | None = None,
    queue_for_review: bool = True,
    client: ApiClient | None = None,
) -> tuple[MediaItem, bool]:
    """Store an item, or return the one already stored; the flag says whether it was created.

    Everything is validated before anything is written (a `ValidationProblem` leaves no row
    and no file). The same image bytes, or the same (source, external_id), from the same
    `client` (None: an import) is the same item; another client's is never returned.
    `split` is for imported corpus items (`val` counts as train); other items get theirs from
    a hash of their uid. A `label` is an existing rating (corpus, Civitai): the item is then
    done; without one it waits in the review queue, unless `queue_for_review` is False (no
    review state at all: a generation-time check nobody asked to review).

    The prediction is queued after the commit; `item.prediction_queued` then says whether the
    broker took it (False: the periodic sweep will queue it later).
    """
    prompt = text_clean(prompt, field="prompt")
    negative_prompt = text_clean(negative_prompt, field="negative_prompt")
    tags = tags_clean(tags)
    source = short_text_clean(source, field="source")
    external_id = short_text_clean(external_id, field="external_id")
    metadata = dict(metadata_clean(metadata))
    level = label_clean(label)
    split = split_clean(split)
    normalised = image_normalise(image) if image is not None else None
    if normalised is not None:
        prompt = prompt or normalised.prompt
        negative_prompt = negative_prompt or normalised.negative_prompt
        if normalised.generation:
            metadata.setdefault("generation", normalised.generation)

    try:
        with transaction.atomic():
            existing = _existing(normalised, source, external_id, client)
            if existing is not None:
                return existing, False
            item = MediaItem(
                client=client,
                source=source,
                external_id=external_id,
                prompt=prompt,
                negative_prompt=negative_prompt,
                tags=tags,
                metadata=metadata,
            )
            item.split = split or split_for(item.uid)
            _store(item, normalised, level, label_origin, queue_for_review)
    except IntegrityError:
        # A concurrent request stored the same image or external id between our look-up and
        # our insert: the unique constraints kept one row, and it is the answer.
        existing = _existing(normalised, source, external_id, client)
        if existing is None:
            raise
        return existing, False
    return item, True


def _existing(
    normalised: NormalisedImage | None, source: str, external_id: str, client: ApiClient | None
) -> MediaItem | None:
    match = Q(pk__in=[])
    if normalised is not None:
        match |= Q(image_sha256=normalised.sha256)
    if external_id:
        match |= Q(source=source, external_id=external_id)
    mine = Q(client__isnull=True) if client is None else Q(client=client)
    return MediaItem.objects.filter(mine).filter(match).order_by("pk").first()


def _store(
    item: MediaItem,
    normalised: NormalisedImage | None,
    level: int | None,
    label_origin: str,
    queue_for_review: bool,
) -> None:
    """The writes of one new item; runs inside the caller's transaction."""
    if normalised is not None:
        item.image_sha256 = normalised.sha256
        item.width, item.height = normalised.width, normalised.height
        # Written inside the transaction so that a failed write leaves no row; the file is
        # removed again when a later write of this transaction fails.
        item.image.save(f"{item.uid}.png", ContentFile(normalised.png), save=False)
    try:
        item.save()
        if level is not None:  # label_create closes the item's review state
            label_create(item=item, level=level, moderator=None, origin=label_origin)
        elif queue_for_review:
            ReviewState.objects.create(item=item, state=ReviewState.State.QUEUED)
        # Stamped with the item, before any worker can see it: the sweep leaves its rating to
        # the message below for RATING_LEASE_SECONDS instead of queueing it a second time.
        RatingDispatch.objects.stamp(item_ids=[item.pk], new=True)
    except BaseException:
        if normalised is not None:  # only the file written here: a correction shares its image
            item.image.delete(save=False)
        raise
    item.prediction_queued = None

    def sent(queued: bool) -> None:
        item.prediction_queued = queued
        if not queued:  # never queued, then: the next sweep queues it
            RatingDispatch.objects.unstamp(item_ids=[item.pk])

    # With the items received beside it that still wait: they are rated in one batch.
    enqueue("moderation.inference.tasks.predict_items", [item.pk], gather=True, sent=sent)
