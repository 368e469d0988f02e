"""Reading the audit trail: newest first, with the actor, item and model version joined in."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

from moderation.audit.models import AuditEvent
from moderation.media.models import MediaItem


def _events() -> QuerySet[AuditEvent]:
    # One query for a whole page or export; the item's prompt and tags are never shown here.
    return (
        AuditEvent.objects.select_related("actor", "item", "model_version")
        .defer("item__prompt", "item__negative_prompt", "item__tags", "item__metadata")
        .order_by("-at", "-pk")
    )


def audit_event_list(
    *,
    item_uid: UUID | str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The rows matching every filter given: `actor` is a username, `since` is inclusive and
    `until` exclusive (the filter form passes the start of the day after its "to" date)."""
    events = _events()
    if item_uid is not None:
        events = events.filter(item__uid=item_uid)
    if actor is not None:
        events = events.filter(actor__username=actor)
    if action is not None:
        events = events.filter(action=action)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events


def audit_event_list_for_item(*, item: MediaItem) -> QuerySet[AuditEvent]:
    return _events().filter(item=item)


def model_status_history() -> dict[int, list[AuditEvent]]:
    """Every model version's status changes, oldest first: its promotions, rollbacks and
    retirement, who made them and why."""
    history: dict[int, list[AuditEvent]] = {}
    rows = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_STATUS).select_related("actor")
    for event in rows.order_by("at", "pk"):
        history.setdefault(event.model_version_id, []).append(event)
    return history
