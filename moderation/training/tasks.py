"""Training tasks, routed to the `training` queue (GPU workers, concurrency 1)."""

from __future__ import annotations

from celery import shared_task

from moderation.inference import bundles
from moderation.training import gate, registry, runs, services


@shared_task(acks_late=True)
def run_training(run_id: int) -> str:
    """Run a queued retrain; delivering it twice runs it once."""
    return services.training_run_execute(run_id=run_id).state


@shared_task(acks_late=True)
def retrain_if_enough_labels() -> int | None:
    run = runs.retrain_if_enough_labels()
    return None if run is None else run.pk


@shared_task(acks_late=True)
def record_live_figures() -> int | None:
    """The champion's figures on live labels today: the points of the dashboards' live trend."""
    champion = bundles.champion()
    evaluation = None if champion is None else gate.evaluation_create_live(version=champion)
    return None if evaluation is None else evaluation.pk


@shared_task(acks_late=True)
def run_promotion(promotion_id: int) -> str:
    """Load the incoming champion, rate the review queue with it, switch; delivered twice, it
    runs once."""
    return registry.promotion_execute(promotion_id).state
