"""Review tasks: the label-error pass, on the default (CPU) queue."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from moderation.review.second_looks import label_error_pass


@shared_task(acks_late=True)
def find_label_errors(actor_id: int | None = None) -> dict[str, int | str]:
    """Score every current label against the champion's out-of-sample probabilities and send
    the likely errors to a second look (LABEL_ERRORS_LIMIT at most); returns the counts."""
    actor = None if actor_id is None else get_user_model().objects.filter(pk=actor_id).first()
    report = label_error_pass(actor=actor)
    return {
        "scored": report.scored,
        "from_bundle": report.from_bundle,
        "found": report.found,
        "opened": report.opened,
        "version": report.version,
    }
