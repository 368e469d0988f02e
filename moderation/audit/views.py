"""The admins' audit trail: every recorded change, filtered, paginated, and as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from moderation.audit.forms import AuditFilterForm
from moderation.audit.models import AuditEvent
from moderation.audit.selectors import audit_event_list
from moderation.dashboards.decorators import admin_required

PER_PAGE = 50
CSV_HEADER = [
    "at",
    "actor",
    "action",
    "item_uid",
    "item_source",
    "item_external_id",
    "model_version",
    "old",
    "new",
    "reason",
    "detail",
]


@require_GET
@admin_required
def audit_events(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        # Rows under filters the admin did not ask for would mislead: show the errors alone.
        return render(request, "audit/events.html", {"form": form, "page": None}, status=400)
    page = Paginator(audit_event_list(**form.filters()), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audit/events.html", {"form": form, "page": page})


class _Echo:
    """A file-like object whose `write` hands the line back, for csv.writer to stream."""

    def write(self, value: str) -> str:
        return value


def _csv_row(event: AuditEvent) -> list[str]:
    item, version = event.item, event.model_version
    return [
        event.at.isoformat(),
        event.actor.get_username() if event.actor else "system",
        event.action,
        str(item.uid) if item else "",
        item.source if item else "",
        item.external_id if item else "",
        version.version if version else "",
        event.old,
        event.new,
        event.reason,
        json.dumps(event.detail, ensure_ascii=False, sort_keys=True) if event.detail else "",
    ]


def _csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for event in events:
        yield writer.writerow(_csv_row(event))


@require_GET
@admin_required
def audit_events_csv(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(e for field in form.errors.values() for e in field)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    # iterator(): a year of rows is streamed in chunks, never held in memory at once.
    events = audit_event_list(**form.filters()).iterator(chunk_size=2000)
    response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response
