"""The admins' pages for retraining and the model registry.

Each page answers htmx with the fragment it swaps: the runs table and the run panel poll
every two seconds while a run is queued or running, and answer without the trigger once it
has finished, which stops the polling.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from moderation import schedules
from moderation.audit.selectors import model_status_history
from moderation.dashboards.decorators import admin_required
from moderation.dashboards.selectors import evaluation_latest_by_version
from moderation.dispatch import send
from moderation.inference.bundles import champion
from moderation.inference.models import ModelVersion
from moderation.training import gate, registry, runs, selectors
from moderation.training.forms import RecalibrateForm, TrainingRunStartForm
from moderation.training.models import Promotion, TrainingRun

RUNS_SHOWN = 50

# The gate table: (figure, label, format). Support rows come last, without a check.
GATE_FIGURES = [
    ("macro_f1", "Macro-F1", "score"),
    ("accuracy", "Accuracy", "score"),
    ("dcm_rate", "DCM rate", "rate"),
    ("dcm_count", "DCM count", "count"),
    ("severe_dcm_rate", "Severe DCM rate", "rate"),
    ("severe_dcm_count", "Severe DCM count", "count"),
    ("n", "Support: test items", "count"),
    ("explicit_support", "Support: explicit (X/XXX) items", "count"),
]
HIGHER_IS_WORSE = {"dcm_rate", "dcm_count", "severe_dcm_rate", "severe_dcm_count"}
LOWER_IS_WORSE = {"macro_f1", "accuracy"}
GATE_MODELS = ("suggested", "voter", "mlp")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _figure(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{100 * value:.1f}%"
    if kind == "score":
        return f"{value:.3f}"
    return str(value)


def _cell(figures: dict[str, Any], key: str, kind: str) -> dict[str, str]:
    bounds = (figures.get("intervals") or {}).get(key)
    low, high = bounds if bounds else (None, None)
    interval = f"[{_figure(low, kind)}, {_figure(high, kind)}]" if bounds else ""
    return {"value": _figure(figures.get(key), kind), "interval": interval}


def gate_rows(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate's figures as table rows: candidate beside champion, for each combined model.

    `worse` marks a suggested-rating figure on which the candidate is worse than the champion,
    whether or not the tolerances let it through.
    """
    rows = []
    for key, label, kind in GATE_FIGURES:
        new, old = gate["candidate"]["suggested"].get(key), gate["champion"]["suggested"].get(key)
        comparable = new is not None and old is not None
        worse = comparable and (
            (key in HIGHER_IS_WORSE and new > old) or (key in LOWER_IS_WORSE and new < old)
        )
        cells = [
            _cell(gate[side][model], key, kind)
            for model in GATE_MODELS
            for side in ("candidate", "champion")
        ]
        rows.append({"key": key, "label": label, "cells": cells, "worse": worse})
    return rows


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the page the button was on (a `next` field), else to `default`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default)


@require_GET
@vary_on_headers("HX-Request")
@admin_required
def training_runs(request: HtmxHttpRequest) -> HttpResponse:
    runs = selectors.training_run_list(limit=RUNS_SHOWN)
    context = {"runs": runs, "polling": any(run.is_active for run in runs)}
    if request.htmx:  # the polled table: none of the page's other figures
        return render(request, "training/partials/_runs.html", context)
    form = TrainingRunStartForm()
    # Each mode with how long its latest runs took.
    context["modes"] = [
        (radio, selectors.training_duration_estimate(mode=radio.data["value"]))
        for radio in form["mode"]
    ]
    serving = champion()
    context["images"] = selectors.training_images()
    context["champion"] = serving
    context["champion_reads"] = selectors.mlp_reads(serving)
    every = schedules.periodic_task_every(schedules.LABEL_ERRORS)
    context["label_errors_every"] = (
        "on its own " + schedules.interval_words(every)[1]
        if every is not None
        else "on no schedule: its periodic task is disabled"
    )
    return render(request, "training/runs.html", context)


@require_POST
@admin_required
def training_start(request: HttpRequest) -> HttpResponse:
    form = TrainingRunStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose what to retrain: the MLP only, or experts and MLP.")
        return redirect("training:runs")
    try:
        run = runs.training_run_start(mode=form.cleaned_data["mode"], started_by=request.user)
    except runs.TrainingBusy:
        return _busy(request, "this click started nothing. Wait for it to finish, or cancel it.")
    messages.success(request, f"Retrain #{run.pk} queued on the training workers.")
    return redirect("training:run", pk=run.pk)


def _busy(request: HttpRequest, consequence: str) -> HttpResponse:
    """A second start while a run is queued or running (a double click, or another admin's
    run): nothing is started, and the admin lands on the run that is."""
    active = TrainingRun.objects.filter(active=True).first()
    messages.error(
        request,
        "A retrain is already queued or running"
        + (f" (run #{active.pk})" if active else "")
        + f": two retrains never run at once, so {consequence}",
    )
    if active is None:  # it finished meanwhile
        return redirect("training:runs")
    return redirect("training:run", pk=active.pk)


@require_POST
@admin_required
def label_errors_find(request: HttpRequest) -> HttpResponse:
    """Queue the label-error pass: likely label errors go to a second look."""
    if not send("moderation.review.tasks.find_label_errors", request.user.pk):
        messages.error(request, "Not started: the task broker cannot be reached.")
        return redirect("training:runs")
    messages.success(
        request,
        "The label-error pass is queued: likely label errors appear as second looks in the "
        "review queue and on the health page's label quality section within a minute.",
    )
    return redirect("training:runs")


@require_POST
@admin_required
def training_recalibrate(request: HttpRequest) -> HttpResponse:
    """A candidate that is the champion with its bounded suggestion recalibrated at a new α,
    judged by the gate at that α."""
    form = RecalibrateForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Not recalibrated: the target DCM rate α is a percentage between 0.1 and 50."
        )
        return redirect("training:versions")
    alpha = float(form.cleaned_data["alpha_percent"]) / 100
    try:
        run = runs.training_run_start(
            mode=TrainingRun.Mode.RECALIBRATE, alpha=alpha, started_by=request.user
        )
    except runs.TrainingBusy:
        return _busy(request, "nothing was recalibrated.")
    except ValueError as error:
        messages.error(request, f"Not recalibrated: {error}.")
        return redirect("training:versions")
    messages.success(
        request, f"Recalibration #{run.pk} at α = {alpha:.1%} queued: no model is trained."
    )
    return redirect("training:run", pk=run.pk)


@require_GET
@vary_on_headers("HX-Request")
@admin_required
def training_run(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = selectors.training_run_get(pk=pk)
    context = {
        "run": run,
        "stages": selectors.run_stage_list(run),
        "needs_admin": gate.needs_admin_why(run.gate),
        "gate_rows": gate_rows(run.gate) if run.gate else [],
        "candidate_reads": selectors.mlp_reads(run.candidate),
        "verdict": gate.promotion_verdict(run.candidate) if run.candidate else None,
        # A recalibration's α, which its gate judged it at.
        "run_alpha_percent": _percent(run.alpha),
    }
    template = "training/partials/_run.html" if request.htmx else "training/run.html"
    return render(request, template, context)


@require_POST
@admin_required
def training_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    if run.is_active:
        runs.training_run_cancel(run=run)
        messages.info(request, f"Run #{run.pk} cancelled: it stops at its next stage.")
    else:
        status = selectors.training_run_get(pk=run.pk).status
        messages.info(request, f"Nothing to cancel: run #{run.pk} has stopped ({status.words}).")
    return redirect("training:run", pk=run.pk)


@require_GET
@admin_required
def model_versions(request: HttpRequest) -> HttpResponse:
    versions = ModelVersion.objects.select_related("training_run")
    evaluations = evaluation_latest_by_version(data="test")
    history = model_status_history()
    promotion = registry.promotion_get_latest()
    rows = [
        {
            "version": v,
            "evaluation": evaluations.get(v.pk),
            "mlp_reads": selectors.mlp_reads(v),
            "verdict": gate.promotion_verdict(v),
            "history": history.get(v.pk, []),
            "alpha_percent": _alpha_percent(v),
        }
        for v in versions
    ]
    context = {
        "rows": rows,
        "promotion": promotion,
        "busy": promotion is not None and promotion.is_active,
        "recalibration_estimate": selectors.training_duration_estimate(
            mode=TrainingRun.Mode.RECALIBRATE
        ),
    }
    return render(request, "training/versions.html", context)


def _alpha_percent(version: ModelVersion) -> float | None:
    """The target DCM rate of a bounded suggestion, in percent; None for another policy."""
    return _percent(((version.manifest or {}).get("suggestion") or {}).get("alpha"))


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 2)


@require_GET
@admin_required
def promotion_panel(request: HtmxHttpRequest) -> HttpResponse:
    """The latest promotion's progress, polled every second while it is under way. When the
    poll finds it finished, the page reloads to show the new statuses."""
    promotion = registry.promotion_get_latest()
    response = render(request, "training/partials/_promotion.html", {"promotion": promotion})
    if request.GET.get("polling") and (promotion is None or not promotion.is_active):
        response["HX-Refresh"] = "true"
    return response


def _start(request: HttpRequest, version: ModelVersion, kind: str) -> HttpResponse:
    """Start a promotion or rollback; the versions page follows its progress."""
    word = "promoted" if kind == Promotion.Kind.PROMOTE else "rolled back"
    try:
        registry.promotion_start(
            version=version, actor=request.user, reason=request.POST.get("reason", ""), kind=kind
        )
    except (registry.PromotionUnderWay, registry.AlreadyChampion) as repeated:
        # A second click on the same button: the first one's change stands.
        messages.info(request, f"Nothing changed: {repeated}.")
        return redirect("training:versions")
    except registry.PromotionRefused as refused:
        messages.error(request, f"Not {word}: {refused}.")
        return _back(request, "training:versions")
    messages.success(
        request,
        f"{'Promoting' if kind == Promotion.Kind.PROMOTE else 'Rolling back to'} "
        f"{version.version}: a worker loads its bundle and rates the review queue with it, "
        "then it becomes the champion. Moderators keep a suggestion throughout.",
    )
    return redirect("training:versions")


@require_POST
@admin_required
def model_version_promote(request: HttpRequest, pk: int) -> HttpResponse:
    return _start(request, get_object_or_404(ModelVersion, pk=pk), Promotion.Kind.PROMOTE)


@require_POST
@admin_required
def model_version_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    if request.POST.get("confirm") != "yes":
        messages.error(request, f"Not rolled back: confirm the rollback to {version.version}.")
        return _back(request, "training:versions")
    return _start(request, version, Promotion.Kind.ROLLBACK)


@require_POST
@admin_required
def model_version_retire(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        registry.model_version_retire(version=version, actor=request.user)
    except registry.PromotionRefused as error:
        messages.error(request, f"{version.version} not retired: {error}.")
        return _back(request, "training:versions")
    messages.success(request, f"{version.version} retired.")
    return _back(request, "training:versions")
