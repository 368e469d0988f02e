"""A retrain's lifecycle: queueing one (never two at once), cancelling it, failing one whose
worker died, its progress and its end, and the periodic check that starts one. The run itself
(train, evaluate, judge) is `services.training_run_execute`."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from moderation.dispatch import enqueue
from moderation.inference import bundles
from moderation.training import selectors
from moderation.training.models import TrainingRun

log = logging.getLogger(__name__)

State = TrainingRun.State


class TrainingBusy(RuntimeError):
    """A retrain is already queued or running."""


class TrainingCancelled(RuntimeError):
    """An admin cancelled the run."""


# -- starting and following a run ------------------------------------------------------------


def training_run_start(
    *,
    mode: str = TrainingRun.Mode.MLP,
    started_by: AbstractBaseUser | None = None,
    trigger: str = "admin",
    alpha: float | None = None,
) -> TrainingRun:
    """Queue a retrain, or (`mode` RECALIBRATE) a recalibration of the champion's bounded
    suggestion at `alpha`. Refused while another is queued or running (TrainingBusy); a
    recalibration of a champion that does not suggest by the bounded rule, or at an α outside
    (0, 1), is refused with ValueError."""
    champion = bundles.champion()
    if mode == TrainingRun.Mode.RECALIBRATE:
        if alpha is None or not 0 < alpha < 1:
            raise ValueError(f"α {alpha}: expected a share between 0 and 1 (e.g. 0.03 for 3%)")
        if champion is None or champion.manifest.get("suggested") != "bounded":
            raise ValueError(
                "the champion does not suggest by the bounded-DCM rule: there is no α to set"
            )
    training_runs_expire_stale()
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                mode=mode,
                started_by=started_by,
                trigger=trigger,
                base_version=champion,
                alpha=alpha if mode == TrainingRun.Mode.RECALIBRATE else None,
            )
    except IntegrityError:
        raise TrainingBusy("a retrain is already queued or running") from None

    def sent(queued: bool) -> None:
        if not queued:  # the broker is down: the run must not hold the lock forever
            run_finish(run.pk, State.FAILED, "could not queue the run: the broker is unreachable")

    enqueue("moderation.training.tasks.run_training", run.pk, sent=sent)
    return run


def training_runs_expire_stale() -> int:
    """Fail runs whose worker died: their heartbeat stopped, the champion never changed.

    Called before a run starts, when a run's message is delivered (again) and by the periodic
    retrain check, so a killed run is failed even when its broker lost the message.
    """
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.TRAINING_STALE_MINUTES)
    stale = TrainingRun.objects.filter(active=True, heartbeat_at__lt=cutoff)
    # A run cancelled while running, whose worker then died, stays cancelled.
    released = stale.filter(state=State.CANCELLED).update(active=None, finished_at=now)
    return released + stale.exclude(state=State.CANCELLED).update(
        state=State.FAILED,
        active=None,
        reason="the worker stopped sending heartbeats (killed or lost); the champion is unchanged",
        finished_at=now,
    )


def training_run_cancel(*, run: TrainingRun) -> None:
    """Stop a run; the champion stays. A queued run never starts. A running one stops at its
    next stage and holds the lock until then: no second run starts beside a cancelled run
    whose worker is still at work (or until its heartbeat stops, if the worker dies)."""
    reason = "cancelled by an admin"
    runs = TrainingRun.objects.filter(pk=run.pk, active=True)
    runs.filter(state=State.QUEUED).update(
        state=State.CANCELLED, active=None, reason=reason, finished_at=timezone.now()
    )
    runs.filter(state=State.RUNNING).update(state=State.CANCELLED, reason=reason)


def run_progress(run_id: int, *, stage: str, progress: float, line: str) -> None:
    """Record where the run is, in its own short write, so the browser can follow it; stop
    the run here when it was cancelled (or failed as stale) meanwhile."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.state != State.RUNNING:
        raise TrainingCancelled(run.reason)
    stamp = timezone.now().strftime("%H:%M:%S")
    TrainingRun.objects.filter(pk=run_id).update(
        stage=stage,
        progress=progress,
        log=run.log + f"{stamp} {line}\n",
        heartbeat_at=timezone.now(),
    )
    log.info("training run %s: %s", run_id, line)


def run_finish(run_id: int, state: str, reason: str) -> None:
    # Only a queued or running run finishes: a cancel that landed a moment earlier is kept.
    TrainingRun.objects.filter(pk=run_id, active=True, state__in=TrainingRun.ACTIVE).update(
        state=state, active=None, reason=reason, finished_at=timezone.now()
    )


def run_release_cancelled(run_id: int) -> None:
    """A cancelled run's worker has stopped: the next run may start."""
    TrainingRun.objects.filter(pk=run_id, active=True, state=State.CANCELLED).update(
        active=None, finished_at=timezone.now()
    )


def retrain_if_enough_labels() -> TrainingRun | None:
    """The periodic check: start an MLP retrain once enough new training labels exist."""
    training_runs_expire_stale()
    last = TrainingRun.objects.order_by("-created_at").first()
    count = selectors.new_training_label_count(since=None if last is None else last.created_at)
    if count < settings.RETRAIN_MIN_NEW_LABELS:
        return None
    try:
        return training_run_start(mode=TrainingRun.Mode.MLP, trigger="schedule")
    except TrainingBusy:
        return None
