"""Evaluation of model versions, the promotion gate, and the registry's status changes.

A version is scored on labelled examples (`evaluation_create`; from its manifest when it was
registered, on live labels for the trend); the gate judges a candidate's suggested rating
against the champion's on the same items; promotion, rollback and retirement go through the
registry here, each audited (`versions.model_version_status_set`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from moderation.inference import bundles, versions
from moderation.inference.models import ModelVersion
from moderation.training.models import Evaluation, TrainingRun
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
    from moderation.dashboards.selectors import live_report

    report = live_report(version, bootstrap=settings.GATE_BOOTSTRAP)
    if report is None:
        return None
    return Evaluation.objects.create(
        model_version=version, data=Evaluation.Data.LIVE, n=report["n"], report=report
    )


def promotion_gate(*, candidate: dict[str, Any], champion: dict[str, Any]) -> dict[str, Any]:
    """Judge the suggested rating of a candidate against the champion's on the same items.

    Severe DCM count not above the champion's (plus GATE_SEVERE_TOLERANCE), DCM rate not above
    the champion's plus GATE_DCM_TOLERANCE, macro-F1 not below the champion's minus
    GATE_F1_TOLERANCE. With fewer explicit test items than GATE_MIN_EXPLICIT the verdict is
    only advice: `needs_admin` says why.
    """
    checks = [
        _check(
            "severe DCM count",
            candidate["severe_dcm_count"],
            champion["severe_dcm_count"],
            candidate["severe_dcm_count"]
            <= champion["severe_dcm_count"] + settings.GATE_SEVERE_TOLERANCE,
            higher_is_worse=True,
        ),
        _check(
            "DCM rate",
            candidate["dcm_rate"],
            champion["dcm_rate"],
            candidate["dcm_rate"] <= champion["dcm_rate"] + settings.GATE_DCM_TOLERANCE + 1e-12,
            higher_is_worse=True,
        ),
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
    if explicit < settings.GATE_MIN_EXPLICIT:
        needs_admin = (
            f"only {explicit} explicit test items (fewer than {settings.GATE_MIN_EXPLICIT}): "
            "an admin decides"
        )
    return {
        "passed": all(c["passed"] for c in checks),
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


# -- the registry ----------------------------------------------------------------------------


class PromotionRefused(ValueError):
    """A status change the registry does not make; the message says why."""


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
    if run.gate.get("needs_admin"):
        return "needs_reason", run.gate["needs_admin"]
    return "passed", "the gate passed it"


def model_version_promote(
    *, version: ModelVersion, actor: AbstractBaseUser | None = None, reason: str = ""
) -> ModelVersion:
    """Make a candidate the champion once its bundle has loaded; workers load it on their next
    task. A candidate the gate did not pass outright needs the admin's reason (kept in the
    audit trail); a retired version, a former champion (`model_version_rollback`) and the
    candidate of a failed or cancelled run are refused. A missing, corrupt, truncated or
    incompatible bundle raises (BundleError or the loader's own error) and the champion stays
    as it was."""
    version.refresh_from_db(fields=["status"])
    verdict, why = promotion_verdict(version)
    reason = reason.strip()
    if verdict == "refused":
        raise PromotionRefused(f"{version.version} cannot be promoted: {why}")
    if verdict == "needs_reason" and not reason:
        raise PromotionRefused(f"{why}: promoting it needs your reason, kept in the audit trail")
    bundles.bundle_for(version)
    return versions.model_version_promote(
        version=version, actor=actor, reason=reason or "passed the gate"
    )


def model_version_rollback(
    *, version: ModelVersion, actor: AbstractBaseUser | None = None, reason: str = ""
) -> ModelVersion:
    """Make a former champion the champion again (its bundle loaded first, as a promotion)."""
    version.refresh_from_db(fields=["status"])
    if version.status != ModelVersion.Status.FORMER:
        raise PromotionRefused(
            f"only a former champion can be rolled back to; {version.version} is {version.status}"
        )
    bundles.bundle_for(version)
    return versions.model_version_promote(
        version=version, actor=actor, reason=reason.strip() or "rolled back"
    )


def model_version_retire(
    *, version: ModelVersion, actor: AbstractBaseUser | None = None
) -> ModelVersion:
    """Retire a candidate or a former champion for good: it is never promoted again."""
    version.refresh_from_db(fields=["status"])
    if version.status == ModelVersion.Status.CHAMPION:
        raise PromotionRefused(
            "the champion cannot be retired: promote or roll back to another first"
        )
    with transaction.atomic():
        return versions.model_version_status_set(
            version=version, status=ModelVersion.Status.RETIRED, actor=actor, reason="retired"
        )
