"""The admins' dashboards: model versions and DCM, one version in detail, moderation health.

Every chart's numbers are on the page as a table and downloadable as CSV.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from moderation import schedules
from moderation.dashboards import tables
from moderation.dashboards.charts import Series, bar_chart, line_chart
from moderation.dashboards.decorators import admin_required
from moderation.dashboards.failures import rating_failure_list
from moderation.dashboards.live import live_report, live_reports_recent
from moderation.dashboards.quality import label_quality
from moderation.dashboards.selectors import (
    evaluation_latest_by_version,
    evaluation_list,
    model_version_list,
    moderation_health,
    report_figures,
    report_models,
    severe_down_class_items,
)
from moderation.inference.models import ModelVersion
from moderation.inference.services import rating_retry
from moderation.media.models import MediaItem
from rating_models.ratings import LABELS

SEVERE_LIST_LIMIT = 100
FAILED_LIST_LIMIT = 100


def _csv(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _version_blocks() -> tuple[list[tables.VersionBlock], datetime]:
    """Every version's figures, and when their live part was counted."""
    versions = model_version_list()
    live, live_at = live_reports_recent(versions)
    return tables.version_blocks(versions, evaluation_latest_by_version(data="test"), live), live_at


# A bundle's version as `rating_models.bundle.new_version` makes it: time and a random suffix.
GENERATED_VERSION = re.compile(r"\d{8}-\d{6}-(?P<suffix>[0-9a-f]+)")


def short_version(version: str) -> str:
    """A version's name short enough for a chart's axis: a generated name's random suffix
    (the part that tells it apart, as the versions page shows it at the name's end), any
    other long name's first characters."""
    if match := GENERATED_VERSION.fullmatch(version):
        return "…" + match["suffix"]
    return version if len(version) <= 12 else version[:11] + "…"


@dataclass(frozen=True)
class TrendLabel:
    """How one evaluation is named: on the x axis (short), in its points' tooltips and in the
    table (whole). A version evaluated more than once says which evaluation each point is,
    and each says on how many items, which is why two points of a version differ."""

    axis: str
    tooltip: str
    which: str  # "evaluation 2 of 2", or "" for a version evaluated once


def trend_labels(points: Sequence[tables.TrendPoint], data: str) -> list[TrendLabel]:
    noun = "test items" if data == "test" else "live labels"
    totals = Counter(p.evaluation.model_version_id for p in points)
    seen: Counter[int] = Counter()
    labels = []
    for point in points:
        evaluation, version = point.evaluation, point.evaluation.model_version
        seen[version.pk] += 1
        total = totals[version.pk]
        which = f"evaluation {seen[version.pk]} of {total}" if total > 1 else ""
        size = f"{evaluation.n:,} {noun}"
        short = short_version(version.version)
        axis = f"{short} · {seen[version.pk]}/{total}" if total > 1 else short
        details = ", ".join(filter(None, [which, f"{evaluation.created_at:%Y-%m-%d}"]))
        labels.append(
            TrendLabel(
                axis=f"{axis}\n{size}",
                tooltip=f"{version.version} ({details}) · {size}",
                which=which,
            )
        )
    return labels


def _trend(data: str, what: str, empty: str) -> dict[str, Any]:
    """One trend card: the evaluations on `data` ("test" or "live") as points, charts of the
    DCM and severe DCM rates, and what to say when there is none."""
    points = tables.trend_points(evaluation_list(data=data))
    labels = trend_labels(points, data)
    charts = {
        key: line_chart(
            tables.trend_series(points, key),
            x_labels=[label.axis for label in labels],
            point_labels=[label.tooltip for label in labels],
            title=f"{name} on {what}, by evaluation",
            y_label=name,
        )
        if points
        else None
        for key, name in (("dcm_rate", "DCM rate"), ("severe_dcm_rate", "Severe DCM rate"))
    }
    return {
        "id": f"trend-{data}",
        "title": f"DCM trend on {what}",
        "points": points,
        "rows": list(zip(points, labels, strict=True)),
        "dcm_chart": charts["dcm_rate"],
        "severe_chart": charts["severe_dcm_rate"],
        "empty": empty,
    }


def live_trend_empty() -> str:
    """What the empty live trend says: when its first point appears, in words."""
    every = schedules.periodic_task_every(schedules.LIVE_FIGURES)
    if every is None:
        return (
            "No live figures yet, and none will appear: the periodic task that keeps them "
            f"({schedules.LIVE_FIGURES}) is disabled on the admin's Periodic tasks page."
        )
    within, often = schedules.interval_words(every)
    return (
        f"No live figures yet. The first point appears within {within} of the first "
        "moderator's label on an item the champion rated, then one more "
        f"{often}."
    )


TEST_TREND_EMPTY = (
    "No evaluation on the test split yet. The first point appears when a retrain finishes (it "
    "scores its candidate and the champion on the test split), or when a bundle trained with "
    "test data is registered."
)


@require_GET
@admin_required
def overview(request: HttpRequest) -> HttpResponse:
    blocks, live_at = _version_blocks()
    if request.GET.get("format") == "csv":
        return _csv("dcm-metrics.csv", tables.METRICS_HEADER, tables.metrics_csv_rows(blocks))
    context = {
        "blocks": blocks,
        "champion": next((b for b in blocks if b.version.status == "champion"), None),
        "live_at": live_at,
        "test_trend": _trend("test", "the test split", TEST_TREND_EMPTY),
        "live_trend": _trend("live", "live labels", live_trend_empty()),
        "severe_items": severe_down_class_items(limit=SEVERE_LIST_LIMIT),
        "severe_limit": SEVERE_LIST_LIMIT,
    }
    return render(request, "dashboards/overview.html", context)


@require_GET
@admin_required
def trend_csv(request: HttpRequest) -> HttpResponse:
    rows = [
        row
        for data in ("test", "live")
        for row in tables.trend_csv_rows(tables.trend_points(evaluation_list(data=data)))
    ]
    return _csv("dcm-trend.csv", tables.TREND_HEADER, rows)


def _version_report(version: ModelVersion, data: str) -> dict[str, Any] | None:
    if data == "live":
        return live_report(version)
    evaluation = evaluation_latest_by_version(data="test").get(version.pk)
    return evaluation.report if evaluation else None


def _choice(request: HttpRequest, name: str, choices: Sequence[str], default: str) -> str:
    value = request.GET.get(name, default)
    return value if value in choices else default


@require_GET
@admin_required
def version_detail(request: HttpRequest, version: str) -> HttpResponse:
    model_version = get_object_or_404(ModelVersion, version=version)
    data = _choice(request, "data", ("test", "live"), "test")
    report = _version_report(model_version, data)
    models = report_models(report) or ["suggested", "voter", "mlp"]
    model = _choice(request, "model", models, "suggested")
    figures = report_figures(report, model)
    context = {
        "version": model_version,
        "data": data,
        "model": model,
        "model_name": tables.model_name(model),
        "models": [(m, tables.model_name(m)) for m in models],
        "report": report,
        "figures": figures,
        "labels": LABELS,
        "per_class": [(label, figures["per_class"][label]) for label in LABELS] if figures else [],
        "confusion": tables.matrix_rows(figures["confusion"]) if figures else [],
        "dcm_matrix": tables.matrix_rows(figures["dcm_matrix"]) if figures else [],
        "automation": (report or {}).get("automation"),
        "publishing": _publishing(model_version.manifest.get("suggestion")),
        "tradeoff": (report or {}).get("tradeoff") or [],
        "tradeoff_chart": _tradeoff_chart((report or {}).get("tradeoff") or [], data),
    }
    return render(request, "dashboards/version.html", context)


def _publishing(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    """The bound a bounded rule publishes unreviewed under: α, its confidence and τ."""
    if not rule:
        return None
    return {
        "alpha": rule["alpha"],
        "confidence": 1 - rule.get("publish_delta", 0.1),
        "below": rule.get("publish_below"),
    }


def _tradeoff_chart(rows: list[dict[str, Any]], data: str) -> str | None:
    """DCM and over-rating rates of the bounded suggestion over α (* the version's own)."""
    if not rows:
        return None
    return line_chart(
        [
            Series("DCM rate", [r["dcm_rate"] for r in rows], colour="#d55e00"),
            Series("over-rating rate", [r["over_rating_rate"] for r in rows], colour="#0072b2"),
            Series(
                "published unreviewed",
                [r.get("automation_share") or 0.0 for r in rows],
                colour="#009e73",
            ),
            Series("α", [r["alpha"] for r in rows], colour="#999999", dashed=True),
        ],
        x_labels=[f"{r['alpha']:.0%}" + (" *" if r["chosen"] else "") for r in rows],
        title=f"DCM against over-rating by α, {data} items (* this version's α)",
        y_label="share of items",
    )


@require_GET
@admin_required
def confusion_csv(request: HttpRequest, version: str) -> HttpResponse:
    model_version = get_object_or_404(ModelVersion, version=version)
    data = _choice(request, "data", ("test", "live"), "test")
    report = _version_report(model_version, data)
    model = request.GET.get("model", "suggested")
    matrix = _choice(request, "matrix", ("confusion", "dcm_matrix"), "confusion")
    figures = report_figures(report, model)
    if figures is None:
        raise Http404(f"no {data} figures for {model} of {version}")
    rows = tables.matrix_csv_rows(figures[matrix])
    return _csv(f"{matrix}-{version}-{model}-{data}.csv", rows[0], rows[1:])


def _days(request: HttpRequest) -> int:
    try:
        return min(max(int(request.GET.get("days", 30)), 1), 365)
    except ValueError:
        return 30


@require_GET
@admin_required
def health(request: HttpRequest) -> HttpResponse:
    report = moderation_health(days=_days(request))
    chart = bar_chart(
        [(f"{day:%m-%d}", n) for day, n in report.labels_per_day],
        title=f"Moderators' labels per day, last {report.days} days",
        y_label="labels",
        width=960,
    )
    moderators_chart = bar_chart(
        [(m.username, m.labels) for m in report.moderators],
        title=f"Labels per moderator, last {report.days} days",
        y_label="labels",
        colour="#009e73",
    )
    failed, failed_total = rating_failure_list(limit=FAILED_LIST_LIMIT)
    context = {
        "health": report,
        "chart": chart,
        "moderators_chart": moderators_chart,
        "failed": failed,
        "failed_total": failed_total,
        "quality": label_quality(),
    }
    return render(request, "dashboards/health.html", context)


@require_POST
@admin_required
def health_retry(request: HttpRequest, uid: UUID) -> HttpResponse:
    item = get_object_or_404(MediaItem, uid=uid)
    if rating_retry(item=item, actor=request.user):
        messages.success(request, f"Item {uid} is queued for rating again.")
    else:
        messages.info(request, f"Item {uid} had no failed rating to retry.")
    return redirect("dashboards:health")


@require_GET
@admin_required
def health_days_csv(request: HttpRequest) -> HttpResponse:
    report = moderation_health(days=_days(request))
    rows = tables.health_days_csv_rows(report)
    return _csv("labels-per-day.csv", tables.HEALTH_DAYS_HEADER, rows)


@require_GET
@admin_required
def health_moderators_csv(request: HttpRequest) -> HttpResponse:
    report = moderation_health(days=_days(request))
    rows = tables.health_moderators_csv_rows(report)
    return _csv("moderators.csv", tables.HEALTH_MODERATORS_HEADER, rows)
