"""Writing the audit trail. Every writer calls `audit_record` inside its own transaction, so
a change and its audit row commit together or not at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from moderation.audit.models import AuditEvent

Action = AuditEvent.Action


def audit_event(
    *,
    action: str,
    actor: AbstractBaseUser | None = None,
    item: Any = None,
    model_version: Any = None,
    old: object = "",
    new: object = "",
    reason: str = "",
    **detail: Any,
) -> AuditEvent:
    """An audit row, not written yet (`audit_write` writes several in one statement)."""
    return AuditEvent(
        action=action,
        actor=actor if actor is not None and actor.is_authenticated else None,
        item=item,
        model_version=model_version,
        old=_short(old),
        new=_short(new),
        reason=reason,
        detail=detail,
    )


def audit_record(**fields: Any) -> AuditEvent:
    """Append one audit row: who (None is the system), what, old → new, why; the arguments
    are `audit_event`'s."""
    event = audit_event(**fields)
    event.save()
    return event


def audit_write(events: list[AuditEvent]) -> None:
    """Append several audit rows in one INSERT."""
    AuditEvent.objects.bulk_create(events)


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 200 else text[:199] + "…"
