"""Model audit test helpers: items the champion rated, and audits decided through the real
services (sampling, claiming, `task_decide`)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractBaseUser

from moderation.inference.models import ModelVersion, Prediction
from moderation.model_audit.models import AuditSession
from moderation.model_audit.sampling import audit_decide, audit_next, audit_session_start
from moderation.review.labels import label_get_current
from tests.moderation.review.conftest import make_item, make_prediction, make_version

__all__ = ["audit_all", "make_version", "rated"]


@pytest.fixture
def champion(db) -> ModelVersion:
    return make_version("v1")


def rated(
    version: ModelVersion,
    *,
    suggested: int,
    mlp: int | None = None,
    mlp_probs: list[float] | None = None,
    experts: dict[str, int | None] | None = None,
    voter: int | None = None,
    **item_fields,
) -> Prediction:
    """An item and the champion's prediction of it."""
    item = make_item(**item_fields)
    mlp = suggested if mlp is None else mlp
    return make_prediction(
        item,
        version,
        experts=experts,
        voter=suggested if voter is None else voter,
        mlp=mlp,
        mlp_probs=mlp_probs,
        suggested=suggested,
    )


def audit_all(
    admin: AbstractBaseUser, truths: dict[int, int], *, mode: str = AuditSession.Mode.TRIGGERED
) -> AuditSession:
    """Start a session over every fitting item and decide each at `truths[item id]`."""
    session = audit_session_start(admin=admin, mode=mode, size=200, days=7)
    while (task := audit_next(admin=admin)) is not None:
        reason = "illegal" if truths[task.item_id] == 32 else ""
        seen = label_get_current(item=task.item)
        audit_decide(task=task, level=truths[task.item_id], admin=admin, seen=seen, reason=reason)
    return session
