"""The model registry: promotion, rollback and retirement, under the gate's law.

A change of champion runs in the background so that moderators never notice it:

1. `promotion_start` (the admin's click, or a retrain whose candidate passed the gate) checks
   that the change is allowed and records a `Promotion`, one at a time;
2. `promotion_execute` (a worker, `tasks.run_promotion`) loads the incoming bundle, rates the
   open review queue with it, riskiest items first, while the web processes load it too
   (`moderation.training.warm`);
3. then, in one transaction: the status change (audited) and the queue's priorities from the
   new champion's predictions. Items it has not rated yet show the former champion's
   suggestion, marked so, until the workers have rated them.

A failure at any step leaves the champion as it was, and the promotion says why.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from moderation.dispatch import enqueue
from moderation.inference import bundles, services, versions
from moderation.inference.models import ModelVersion, Prediction
from moderation.review.claims import review_priorities_update
from moderation.review.models import ReviewState
from moderation.training.gate import promotion_verdict
from moderation.training.models import Promotion
from rating_models.bundle import BundleError, read_manifest

log = logging.getLogger(__name__)

Kind, State = Promotion.Kind, Promotion.State
RATE_BATCH = 64


class PromotionRefused(ValueError):
    """A status change the registry does not make; the message says why."""


class PromotionBusy(PromotionRefused):
    """Another promotion or rollback is under way."""


class PromotionUnderWay(PromotionBusy):
    """The same change (this version, this kind) is under way already: a second click on the
    same button, which changes nothing."""


class AlreadyChampion(PromotionRefused):
    """The version is the champion already (a second click after the first one's change was
    done): nothing to change."""


def _allowed(version: ModelVersion, kind: str, reason: str) -> None:
    """Raise PromotionRefused unless the version may become the champion this way."""
    version.refresh_from_db(fields=["status"])
    if version.status == ModelVersion.Status.CHAMPION:
        raise AlreadyChampion(f"{version.version} is the champion already")
    if kind == Kind.ROLLBACK:
        if version.status != ModelVersion.Status.FORMER:
            raise PromotionRefused(
                f"only a former champion can be rolled back to; {version.version} is "
                f"{version.status}"
            )
        return
    verdict, why = promotion_verdict(version)
    if verdict == "refused":
        raise PromotionRefused(f"{version.version} cannot be promoted: {why}")
    if verdict == "needs_reason" and not reason:
        raise PromotionRefused(f"{why}: promoting it needs your reason, kept in the audit trail")


def promotion_start(
    *,
    version: ModelVersion,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    kind: str = Kind.PROMOTE,
    queue: bool = True,
) -> Promotion:
    """Record a promotion (or rollback) of the version and queue it for a worker; returns at
    once. A candidate the gate did not pass outright needs the admin's reason; a retired
    version, the candidate of a failed or cancelled run and (through "promote") a former
    champion are refused, and so is a second change while one is under way (PromotionBusy;
    PromotionUnderWay when it is this very change, AlreadyChampion once it is done: a second
    click on the same button changes nothing).
    `queue=False`: the caller runs `promotion_execute` itself (a retrain's worker does)."""
    reason = reason.strip()
    _allowed(version, kind, reason)
    try:  # a bundle that is gone is refused now; one that does not load fails the promotion
        read_manifest(bundles.bundle_path(version))
    except BundleError as error:
        raise PromotionRefused(f"the bundle of {version.version} does not load ({error})") from None
    promotions_expire_stale()
    try:
        with transaction.atomic():
            promotion = Promotion.objects.create(
                version=version, kind=kind, actor=actor, reason=reason
            )
    except IntegrityError:
        # The one index that lets a single change be active decides between two clicks sent
        # at once, whichever process serves them: the second is told which change it met.
        under_way = Promotion.objects.filter(active=True).first()
        if under_way is not None and (under_way.version_id, under_way.kind) == (version.pk, kind):
            raise PromotionUnderWay(
                f"the {under_way.get_kind_display()} of {version.version} is under way already"
            ) from None
        raise PromotionBusy(
            "another promotion or rollback is under way: wait for it to finish"
        ) from None
    if queue:

        def sent(queued: bool) -> None:
            if not queued:
                _fail(promotion.pk, "could not queue it: the broker is unreachable")

        enqueue("moderation.training.tasks.run_promotion", promotion.pk, sent=sent)
    return promotion


def promotion_execute(promotion_id: int) -> Promotion:
    """Load, rate the open queue, switch (see the module docstring). Delivered twice, it runs
    once. Any failure fails the promotion and leaves the champion as it was."""
    claimed = Promotion.objects.filter(pk=promotion_id, state=State.QUEUED).update(
        state=State.LOADING, heartbeat_at=timezone.now()
    )
    promotion = Promotion.objects.select_related("version", "actor").get(pk=promotion_id)
    if not claimed:
        return promotion
    try:
        bundles.bundle_for(promotion.version)  # a bundle that does not load stops here
        _rate_open_queue(promotion)
        _switch(promotion)
    except Exception as error:
        log.exception("promotion %s failed", promotion_id)
        _fail(promotion_id, _describe(error))
    promotion.refresh_from_db()
    return promotion


def promotion_run_now(
    *,
    version: ModelVersion,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    kind: str = Kind.PROMOTE,
) -> Promotion:
    """Start and execute a promotion in this process (management commands, a retrain's
    worker); returns it done or failed."""
    promotion = promotion_start(version=version, actor=actor, reason=reason, kind=kind, queue=False)
    return promotion_execute(promotion.pk)


def promotion_get_latest() -> Promotion | None:
    return Promotion.objects.select_related("version", "actor", "previous").first()


def promotions_expire_stale() -> int:
    """Fail promotions whose worker died (no heartbeat for TRAINING_STALE_MINUTES)."""
    cutoff = timezone.now() - timedelta(minutes=settings.TRAINING_STALE_MINUTES)
    return Promotion.objects.filter(active=True, heartbeat_at__lt=cutoff).update(
        state=State.FAILED,
        active=None,
        error="the worker stopped (killed or lost); the champion is unchanged",
        finished_at=timezone.now(),
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
    if Promotion.objects.filter(version=version, active=True).exists():
        raise PromotionRefused("it is being promoted: wait for the promotion to finish")
    with transaction.atomic():
        return versions.model_version_status_set(
            version=version, status=ModelVersion.Status.RETIRED, actor=actor, reason="retired"
        )


# -- the steps -------------------------------------------------------------------------------


def _open_items_unrated(version: ModelVersion) -> list[int]:
    """Open review items (queued or held) the version has not rated, riskiest first; items
    whose rating failed (unreadable) wait for an admin's retry instead."""
    rated = Prediction.objects.filter(item=OuterRef("item_id"), model_version=version)
    return list(
        ReviewState.objects.exclude(state=ReviewState.State.DONE)
        .filter(~Exists(rated))
        .exclude(item__rating_dispatch__failed_at__isnull=False)
        .order_by("-priority", "item_id")
        .values_list("item_id", flat=True)[: settings.PROMOTION_RATE_ITEMS]
    )


def _rate_open_queue(promotion: Promotion) -> None:
    ids = _open_items_unrated(promotion.version)
    Promotion.objects.filter(pk=promotion.pk).update(
        state=State.RATING, to_rate=len(ids), heartbeat_at=timezone.now()
    )
    for start in range(0, len(ids), RATE_BATCH):
        batch = ids[start : start + RATE_BATCH]
        services.predictions_create(item_ids=batch, version=promotion.version)
        Promotion.objects.filter(pk=promotion.pk).update(
            rated=start + len(batch), heartbeat_at=timezone.now()
        )


def _switch(promotion: Promotion) -> None:
    version = promotion.version
    with transaction.atomic():
        # The champion's row and the version's locked: nothing else changes either until
        # this commits (a retirement, an admin's status change) on PostgreSQL.
        locked = ModelVersion.objects.select_for_update().filter(
            Q(status=ModelVersion.Status.CHAMPION) | Q(pk=version.pk)
        )
        previous = next((v for v in locked if v.status == ModelVersion.Status.CHAMPION), None)
        _allowed(version, promotion.kind, promotion.reason)  # still allowed (e.g. not retired)
        reason = promotion.reason or (
            "rolled back" if promotion.kind == Kind.ROLLBACK else "passed the gate"
        )
        versions.model_version_promote(version=version, actor=promotion.actor, reason=reason)
        rated_open = (
            Prediction.objects.filter(model_version=version, item__review__isnull=False)
            .exclude(item__review__state=ReviewState.State.DONE)
            .values_list("item_id", flat=True)
        )
        review_priorities_update(item_ids=list(rated_open), version=version)
        Promotion.objects.filter(pk=promotion.pk).update(
            state=State.DONE, previous=previous, active=None, finished_at=timezone.now()
        )
    # The open items it has not rated yet (arrived meanwhile, or beyond PROMOTION_RATE_ITEMS)
    # show the former champion's suggestion until the workers have rated them.
    # With the broker down, the sweep queues them once it is back.
    services.ratings_dispatch(item_ids=_open_items_unrated(version))


def _fail(promotion_id: int, error: str) -> None:
    Promotion.objects.filter(pk=promotion_id, active=True).update(
        state=State.FAILED, error=error, active=None, finished_at=timezone.now()
    )


def _describe(error: Exception) -> str:
    if isinstance(error, PromotionRefused):
        return f"refused at the switch: {error}"
    return f"the champion is unchanged: {type(error).__name__}: {error}"
