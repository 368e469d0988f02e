"""Evaluation of model versions and the promotion gate.

A version is scored on labelled examples (`evaluation_create`; from its manifest when it was
registered, on live labels for the trend); the gate judges a candidate's suggested rating
against the champion's on the same items, and `promotion_verdict` says who may promote a
version and why. The changes of status themselves are `moderation.training.registry`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings

from moderation.inference import bundles
from moderation.inference.models import ModelVersion
from moderation.training.models import Evaluation, TrainingRun
from rating_models.calibration import read_calibration
from rating_models.evaluation import evaluate_bundle
from rating_models.examples import Example
from rating_models.experts import ExpertOutput

# -- evaluation and the gate -----------------------------------------------------------------


def evaluation_create(
    *,
    version: ModelVersion,
    examples: list[Example],
    data: str = Evaluation.Data.TEST,
    outputs: dict[str, ExpertOutput] | None = None,
) -> Evaluation:
    """Score a version on labelled examples and keep the report (with bootstrap intervals).

    `outputs`: the version's experts' outputs on the examples, stored before (`stored_outputs`),
    so that the experts do not run again.
    """
    from rating_models.examples import fingerprint

    report = evaluate_bundle(
        bundles.bundle_for(version),
        examples,
        bootstrap=settings.GATE_BOOTSTRAP,
        outputs=outputs,
        # A bounded suggestion's calibration items: the report says what each α costs here.
        calibration=read_calibration(bundles.bundle_path(version)),
    )
    return Evaluation.objects.create(
        model_version=version,
        data=data,
        n=report["n"],
        report=report,
        fingerprint=fingerprint([dataclasses.replace(e, image=None) for e in examples]),
    )


def evaluation_create_from_manifest(*, version: ModelVersion) -> Evaluation | None:
    """Record the figures a bundle was saved with (`rating-models train --test`: its test data,
    fingerprinted in the manifest) as the version's first test evaluation, so that the
    dashboards show a newly registered champion before any retrain re-evaluates it. Nothing
    when the manifest has none or the version has a test evaluation already."""
    report = (version.manifest or {}).get("test_metrics")
    if not report or version.evaluations.filter(data=Evaluation.Data.TEST).exists():
        return None
    test_data = version.manifest.get("test_data") or {}
    return Evaluation.objects.create(
        model_version=version,
        data=Evaluation.Data.TEST,
        n=report["n"],
        report=report,
        fingerprint=test_data.get("fingerprint", ""),
    )


def evaluation_create_live(*, version: ModelVersion) -> Evaluation | None:
    """Keep the version's figures on live labels as they stand now (moderators' current labels
    on items it predicted, with bootstrap intervals): one point of the live trend. Nothing
    when no such label exists yet."""
    from moderation.dashboards.live import live_report

    report = live_report(version, bootstrap=settings.GATE_BOOTSTRAP)
    if report is None:
        return None
    return Evaluation.objects.create(
        model_version=version, data=Evaluation.Data.LIVE, n=report["n"], report=report
    )


def promotion_gate(
    *, candidate: dict[str, Any], champion: dict[str, Any], alpha: float | None = None
) -> dict[str, Any]:
    """Judge the suggested rating of a candidate against the champion's on the same items.

    Severe DCM count not above the champion's (plus GATE_SEVERE_TOLERANCE), DCM rate not above
    the champion's plus GATE_DCM_TOLERANCE, macro-F1 not below the champion's minus
    GATE_F1_TOLERANCE. With fewer explicit test items than GATE_MIN_EXPLICIT the verdict is
    only advice: `needs_admin` says why.

    `alpha`: the candidate is the champion recalibrated to a target DCM rate an admin chose;
    it is judged at its own α: its DCM rate not above α plus GATE_DCM_TOLERANCE (the
    champion's, set at another α, is shown beside it). The other checks stay.
    """
    if alpha is None:
        dcm = _check(
            "DCM rate",
            candidate["dcm_rate"],
            champion["dcm_rate"],
            candidate["dcm_rate"] <= champion["dcm_rate"] + settings.GATE_DCM_TOLERANCE + 1e-12,
            higher_is_worse=True,
        )
    else:
        passed = candidate["dcm_rate"] <= alpha + settings.GATE_DCM_TOLERANCE + 1e-12
        relation = "within" if passed else "is above"
        dcm = _check(
            "DCM rate", candidate["dcm_rate"], champion["dcm_rate"], passed, higher_is_worse=True
        )
        dcm["target"] = alpha
        dcm["detail"] = (
            f"DCM rate {candidate['dcm_rate']:.4g} {relation} its target α = {alpha:.4g}"
        )
    checks = [
        _check(
            "severe DCM count",
            candidate["severe_dcm_count"],
            champion["severe_dcm_count"],
            candidate["severe_dcm_count"]
            <= champion["severe_dcm_count"] + settings.GATE_SEVERE_TOLERANCE,
            higher_is_worse=True,
        ),
        dcm,
        _check(
            "macro-F1",
            candidate["macro_f1"],
            champion["macro_f1"],
            candidate["macro_f1"] >= champion["macro_f1"] - settings.GATE_F1_TOLERANCE - 1e-12,
            higher_is_worse=False,
        ),
    ]
    explicit = candidate.get("explicit_support", 0)
    needs_admin = ""
    if explicit < settings.GATE_MIN_EXPLICIT:  # the fact only: each page says what follows
        needs_admin = (
            f"only {explicit} explicit test items (fewer than {settings.GATE_MIN_EXPLICIT})"
        )
    return {
        "passed": all(c["passed"] for c in checks),
        "alpha": alpha,
        "needs_admin": needs_admin,
        "checks": checks,
        "explicit_support": explicit,
        "candidate": _summary(candidate),
        "champion": _summary(champion),
    }


def _check(
    name: str, candidate: float, champion: float, passed: bool, *, higher_is_worse: bool
) -> dict:
    relation = "above" if higher_is_worse else "below"
    detail = (
        f"{name} {candidate:.4g} is {relation} the champion's {champion:.4g}"
        if not passed
        else f"{name} {candidate:.4g} against the champion's {champion:.4g}"
    )
    return {
        "name": name,
        "candidate": candidate,
        "champion": champion,
        "passed": passed,
        "detail": detail,
    }


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the gate page shows: the suggestion, with the voter and MLP beside it."""
    keys = (
        "n",
        "accuracy",
        "macro_f1",
        "dcm_rate",
        "dcm_count",
        "severe_dcm_count",
        "severe_dcm_rate",
        "explicit_support",
        "intervals",
    )
    return {
        "suggested": {k: report.get(k) for k in keys},
        "voter": {k: report["models"]["voter"].get(k) for k in keys},
        "mlp": {k: report["models"]["mlp"].get(k) for k in keys},
    }


def needs_admin_why(gate: dict[str, Any] | None) -> str:
    """Why the gate left the decision to an admin ("" when it did not). Gates judged before
    the sentence lost its tail said ": an admin decides" after it, which every page already
    says."""
    return ((gate or {}).get("needs_admin") or "").removesuffix(": an admin decides")


def promotion_verdict(version: ModelVersion) -> tuple[str, str]:
    """Whether the version may become the champion, and why: ("passed", ...) when the gate
    passed it outright, ("needs_reason", why) when only an admin with a reason may promote it
    (the gate refused it, left it to an admin for too few explicit test items, or never judged
    it), ("refused", why) when nobody may."""
    status = ModelVersion.Status
    if version.status == status.CHAMPION:
        return "refused", "it is the champion already"
    if version.status == status.RETIRED:
        return "refused", "it is retired, and retired versions do not come back"
    if version.status == status.FORMER:
        return "refused", "it was champion before: roll back to it instead"
    try:
        run = version.training_run  # select_related by the versions page
    except TrainingRun.DoesNotExist:
        run = None
    if run is not None and run.state in (TrainingRun.State.FAILED, TrainingRun.State.CANCELLED):
        return "refused", f"its run #{run.pk} {run.state}"
    if run is None or not run.gate:
        return "needs_reason", "the gate never judged it"
    if not run.gate.get("passed"):
        return "needs_reason", "the gate refused it"
    if needs_admin_why(run.gate):
        return "needs_reason", needs_admin_why(run.gate)
    return "passed", "the gate passed it"
