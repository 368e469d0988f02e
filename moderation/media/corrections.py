"""Changing what an item says, once it may have been rated: a correction is a new item, a purge
leaves a tombstone. Nothing here edits content in place (the database refuses that for an
item with a prediction: `media.content_lock`), and every change writes an audit row."""

from __future__ import annotations

from enum import Enum
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from moderation.audit.services import audit_record
from moderation.media.models import MediaItem
from moderation.media.services import _store
from moderation.media.validation import ValidationProblem, metadata_clean, tags_clean, text_clean
from moderation.review.models import ReviewState


class Keep(Enum):
    """The old item's value, for a field a correction leaves as it was."""

    KEEP = "keep"


KEEP = Keep.KEEP


def item_purge(*, item: MediaItem, admin: AbstractBaseUser, reason: str) -> MediaItem:
    """Remove an item's content (illegal material) and return the tombstone left in its place.

    The prompt, negative prompt, tags, metadata, image, its hash and size are cleared, and who,
    when and why are kept on the item and in an audit row. Its decisions, labels, predictions
    and audit rows stay, pointing at the tombstone: history is not rewritten.

    Its predictions keep `features`, the experts' pre-logit features derived from the purged
    content; they are append-only and stay (they are not the content, but they were computed
    from it). The image file is deleted when the transaction commits; a correction shares its
    item's file (`item_correct`), so the file goes when the last item that shows it is purged.
    """
    reason = _reason_clean(reason)
    with transaction.atomic():
        # Every item that shows this image, locked in one order: two purges of items sharing
        # a file serialise, and the second sees the first and deletes the file.
        shown_with = Q(pk=item.pk) | (Q(image=item.image.name) if item.image else Q(pk__in=[]))
        rows = list(MediaItem.objects.select_for_update().filter(shown_with).order_by("pk"))
        item = next(row for row in rows if row.pk == item.pk)
        if item.is_purged:
            raise ValidationProblem(
                None, f"already purged on {item.purged_at:%Y-%m-%d %H:%M}: a purge is final", 409
            )
        others = [row for row in rows if row.pk != item.pk and not row.is_purged]
        file_name, storage = item.image.name, item.image.storage

        item.prompt = item.negative_prompt = ""
        item.tags = None
        item.metadata = {}
        item.image = ""
        item.image_sha256 = None
        item.width = item.height = None
        item.purged_at = timezone.now()
        item.purged_by = admin
        item.purge_reason = reason
        item.save()
        audit_record(
            action="purge", actor=admin, item=item, old="content", new="purged", reason=reason
        )
        _review_close(item, admin, "purged")
        if file_name and not others:
            transaction.on_commit(lambda: storage.delete(file_name))
    return item


def item_correct(
    *,
    item: MediaItem,
    admin: AbstractBaseUser,
    reason: str,
    prompt: str | Keep = KEEP,
    negative_prompt: str | Keep = KEEP,
    tags: list | str | Keep | None = KEEP,
) -> MediaItem:
    """Store the corrected content as a new item that supersedes `item`, and return it.

    The correction is of the text (prompt, negative prompt, tags, validated as the API does);
    a field left as KEEP keeps the old value. The new item inherits the old one's split (never
    drawn again: a test item must stay a test item), source, metadata and image file, and is
    queued for review and prediction as a new item is. The old item is not touched: its
    labels and predictions describe what it said. Its external id moves into the new item's
    metadata (`supersedes_external_id`): the pair (source, external id) is unique.
    """
    reason = _reason_clean(reason)
    with transaction.atomic():
        old = MediaItem.objects.select_for_update().get(pk=item.pk)
        if old.is_purged:
            raise ValidationProblem(None, "the item is purged: there is no content to correct", 409)
        newer = old.superseded_by.order_by("pk").first()
        if newer is not None:
            raise ValidationProblem(
                None, f"already corrected by item {newer.uid}: correct that one instead", 409
            )
        content = _content_clean(old, prompt, negative_prompt, tags)
        if content == _content_clean(old, KEEP, KEEP, KEEP):
            raise ValidationProblem(None, "nothing to correct: the content is unchanged")
        if not old.has_image and not content["prompt"].strip() and not content["tags"]:
            raise ValidationProblem(None, "nothing to rate: give a prompt or tags")
        metadata = dict(old.metadata)
        if old.external_id:
            metadata["supersedes_external_id"] = old.external_id
        new = MediaItem(
            client=old.client,  # the sender still reads its item, corrected
            source=old.source,
            metadata=metadata_clean(metadata),
            split=old.split,
            supersedes=old,
            # The same stored file; the hash stays with the old item (it is unique).
            image=old.image.name,
            width=old.width,
            height=old.height,
            **content,
        )
        _store(new, None, None, "correction", True)
        audit_record(
            action="content",
            actor=admin,
            item=old,
            old=str(old.uid),
            new=str(new.uid),
            reason=reason,
        )
        _review_close(old, admin, "corrected")
    return new


def _review_close(item: MediaItem, admin: AbstractBaseUser, why: str) -> None:
    """A tombstone or an outdated item leaves the queue: nobody is served it, nobody's claim
    on it stands (its labels stay; the new item is reviewed on its own)."""
    state = ReviewState.objects.select_for_update().filter(item=item).first()
    if state is None or state.state == ReviewState.State.DONE:
        return
    old = state.state
    state.state, state.claimed_by, state.claimed_until = ReviewState.State.DONE, None, None
    state.save(update_fields=["state", "claimed_by", "claimed_until", "updated_at"])
    audit_record(action="review_state", actor=admin, item=item, old=old, new=f"done ({why})")


def _reason_clean(reason: object) -> str:
    reason = text_clean(reason, field="reason", max_chars=2000).strip()
    if not reason:
        raise ValidationProblem("reason", "is required: say why, for whoever reads the history")
    return reason


def _content_clean(
    old: MediaItem, prompt: str | Keep, negative_prompt: str | Keep, tags: Any
) -> dict[str, Any]:
    return {
        "prompt": old.prompt if prompt is KEEP else text_clean(prompt, field="prompt"),
        "negative_prompt": (
            old.negative_prompt
            if negative_prompt is KEEP
            else text_clean(negative_prompt, field="negative_prompt")
        ),
        "tags": old.tags if tags is KEEP else tags_clean(tags),
    }
