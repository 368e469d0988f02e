"""The model audit's pages, for admins: start a session, rate its items one at a time (the
review page's item view and hotkeys), read the figures, download them."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from moderation.media.models import MediaItem
from moderation.model_audit.forms import AuditDecisionForm, AuditFiguresForm, AuditStartForm
from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import (
    AuditError,
    audit_decide,
    audit_next,
    audit_sample_for_task,
    audit_session_list,
    audit_session_start,
    audit_skip,
)
from moderation.model_audit.stats import LEVELS, audit_counts, audit_models, audit_rows
from moderation.review.decisions import DecisionConflict, DecisionError
from moderation.review.decorators import admin_required
from moderation.review.labels import label_get_current
from moderation.review.models import Label, ReviewTask
from moderation.review.queue import level_label
from moderation.review.task_claims import task_get_held
from moderation.review.views import RATING_BUTTONS
from moderation.spreadsheet import csv_cell

SESSIONS_SHOWN = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _index(request: HttpRequest, form: AuditStartForm, *, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "sessions": audit_session_list()[:SESSIONS_SHOWN],
        "held": task_get_held(moderator=request.user, audit=True),
    }
    return render(request, "model_audit/index.html", context, status=status)


@require_GET
@admin_required
def audit_index(request: HttpRequest) -> HttpResponse:
    return _index(request, AuditStartForm())


@require_POST
@admin_required
def audit_start(request: HttpRequest) -> HttpResponse:
    form = AuditStartForm(request.POST)
    if not form.is_valid():
        return _index(request, form, status=400)
    try:
        session = audit_session_start(admin=request.user, **form.cleaned_data)
    except AuditError as error:
        messages.error(request, f"Not started: {error}.")
        return redirect("model_audit:index")
    messages.success(
        request, f"Audit #{session.pk} started: {session.samples.count()} items to rate."
    )
    return redirect("model_audit:audit")


def _panel(request: HtmxHttpRequest, task: ReviewTask | None, *, status: int = 200) -> HttpResponse:
    sample = None if task is None else audit_sample_for_task(task=task)
    progress = None
    if sample is not None:
        progress = audit_session_list().filter(pk=sample.session_id).first()
    context = {
        "task": task,
        "item": None if task is None else task.item,
        "sample": sample,
        # Only its id goes on the page (the audit stays blind to earlier ratings).
        "seen": None if task is None else label_get_current(item=task.item, with_moderator=False),
        "progress": progress,
        "rating_buttons": RATING_BUTTONS,
        "blocked_level": Label.BLOCKED,
    }
    template = "model_audit/partials/_panel.html" if request.htmx else "model_audit/audit.html"
    return render(request, template, context, status=status)


def _next(request: HtmxHttpRequest) -> HttpResponse:
    if not request.htmx:
        return redirect("model_audit:audit")
    return _panel(request, audit_next(admin=request.user))


@require_GET
@admin_required
def audit_page(request: HtmxHttpRequest) -> HttpResponse:
    """The audit page. A GET changes nothing: it shows the item this admin holds, or a panel
    that claims the next one by POST once loaded (audit_claim)."""
    held = task_get_held(moderator=request.user, audit=True)
    if held is not None:
        return _panel(request, held)
    template = "model_audit/partials/_claiming.html" if request.htmx else "model_audit/audit.html"
    return render(request, template, {"claiming": True})


@require_POST
@admin_required
def audit_claim(request: HtmxHttpRequest) -> HttpResponse:
    return _panel(request, audit_next(admin=request.user))


@require_POST
@admin_required
def audit_decide_item(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    task = task_get_held(moderator=request.user, item=item, audit=True)
    if task is None:
        messages.error(request, "Not recorded: you do not hold this item any more.")
        return _next(request)
    form = AuditDecisionForm(request.POST, item=item)
    if not form.is_valid():
        messages.error(request, f"Not recorded: {form.error_text()}")
        return _panel(request, task, status=200 if request.htmx else 400)
    level = form.cleaned_data["level"]
    try:
        audit_decide(
            task=task,
            level=level,
            admin=request.user,
            seen=form.cleaned_data["seen"],
            reason=form.cleaned_data["reason"],
        )
    except DecisionConflict as conflict:  # a label landed between the page and the decision
        messages.error(request, f"Not recorded: {conflict}. Rate it again to replace that label.")
        held = task_get_held(moderator=request.user, item=item, audit=True)
        return _panel(request, held, status=200 if request.htmx else 409)
    except DecisionError as error:
        messages.error(request, f"Not recorded: {error}.")
        return _panel(request, task_get_held(moderator=request.user, item=item, audit=True))
    messages.success(request, f"Recorded as {level_label(level)}.")
    return _next(request)


@require_POST
@admin_required
def audit_skip_item(request: HtmxHttpRequest, uid: str) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    task = task_get_held(moderator=request.user, item=item, audit=True)
    if task is None:
        messages.error(request, "Not skipped: you do not hold this item any more.")
        return _next(request)
    try:
        audit_skip(task=task, admin=request.user)
    except AuditError as error:
        messages.error(request, f"Not skipped: {error}.")
    return _next(request)


def _figures_scope(request: HttpRequest) -> tuple[AuditFiguresForm, dict[str, Any]] | None:
    form = AuditFiguresForm(request.GET)
    if not form.is_valid():
        return None
    session: AuditSession | None = form.cleaned_data["session"]
    return form, {"session": session, "mode": form.cleaned_data["mode"] or ""}


def _bad_scope() -> HttpResponse:
    return HttpResponse("No such audit session or mode.", status=400, content_type="text/plain")


@require_GET
@admin_required
def audit_figures(request: HttpRequest) -> HttpResponse:
    scope = _figures_scope(request)
    if scope is None:
        return _bad_scope()
    form, filters = scope
    rows = audit_rows(**filters)
    counts = audit_counts(rows)
    per_model = len(LEVELS)
    groups = [
        (model, counts[i * per_model : (i + 1) * per_model])
        for i, model in enumerate(audit_models(rows))
    ]
    context = {
        "form": form,
        "rows": rows,
        "groups": groups,
        "experts": [m.name for m in audit_models(rows) if m.kind == "expert"],
        "query": request.GET.urlencode(),
        **filters,
    }
    return render(request, "model_audit/figures.html", context)


def _csv(filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([csv_cell(v) for v in header])
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return response


def _rating(level: int | None) -> str:
    return "abstained" if level is None else level_label(level)


@require_GET
@admin_required
def audit_items_csv(request: HttpRequest) -> HttpResponse:
    scope = _figures_scope(request)
    if scope is None:
        return _bad_scope()
    rows = audit_rows(**scope[1])
    experts = [m.name for m in audit_models(rows) if m.kind == "expert"]
    header = ["item", "session", "mode", "version", "auditor", "truth", "suggested", "voter", "mlp"]
    return _csv(
        "model-audit-items.csv",
        header + [f"expert:{name}" for name in experts],
        (
            [r.uid, r.session_id, r.mode, r.version, r.auditor, level_label(r.truth)]
            + [_rating(r.suggested), _rating(r.voter), _rating(r.mlp)]
            + [_rating(r.experts.get(name)) if name in r.experts else "" for name in experts]
            for r in rows
        ),
    )


def _rate_cells(rate) -> list[Any]:
    if rate is None:
        return ["", "", ""]
    return [round(rate.value, 4), round(rate.low, 4), round(rate.high, 4)]


@require_GET
@admin_required
def audit_counts_csv(request: HttpRequest) -> HttpResponse:
    scope = _figures_scope(request)
    if scope is None:
        return _bad_scope()
    counts = audit_counts(audit_rows(**scope[1]))
    header = ["model", "kind", "level", "tp", "fp", "tn", "fn", "abstained", "precision"]
    header += ["precision_low", "precision_high", "recall", "recall_low", "recall_high"]
    return _csv(
        "model-audit-counts.csv",
        header,
        (
            [
                *(c.model.name, c.model.kind, level_label(c.level)),
                *(c.tp, c.fp, c.tn, c.fn, c.abstained),
                *_rate_cells(c.precision),
                *_rate_cells(c.recall),
            ]
            for c in counts
        ),
    )
