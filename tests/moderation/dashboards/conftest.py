"""Dashboard test helpers: people, versions, predictions, labels and evaluations via the ORM.

carol is an admin, alice a moderator. Labels and evaluations are written straight to the
table (timestamps moved with `update`, which the append-only `save` guard does not see).
"""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.labels import label_get_current
from moderation.review.models import Label
from moderation.training.models import Evaluation
from rating_models.metrics import model_report
from rating_models.ratings import Rating
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.review.conftest import make_item, make_version, probs_for

__all__ = ["PASSWORD", "make_item", "make_user", "make_version"]


def make_prediction(
    item: MediaItem,
    version: ModelVersion,
    *,
    suggested: int,
    voter: int | None = None,
    mlp: int | None = None,
    experts: dict[str, int | None] | None = None,
    auto_publish: bool | None = None,
) -> Prediction:
    """A prediction given in levels; the voter, the MLP and the experts default to `suggested`.
    `auto_publish`: what a bounded rule said (None: the version has none)."""
    voter = suggested if voter is None else voter
    mlp = suggested if mlp is None else mlp
    experts = {"tag_rules": suggested, "lstm": suggested} if experts is None else experts
    return Prediction.objects.create(
        item=item,
        model_version=version,
        experts={
            name: {"rating": level, "probs": None if level is None else probs_for(level)}
            for name, level in experts.items()
        },
        voter_rating=voter,
        mlp_rating=mlp,
        mlp_probs=probs_for(mlp),
        suggested_rating=suggested,
        features=b"",
        auto_publish=auto_publish,
    )


def make_label(
    item: MediaItem,
    level: int,
    moderator: User | None = None,
    *,
    at: datetime | None = None,
    agreed_with_voter: bool | None = None,
    agreed_with_mlp: bool | None = None,
) -> Label:
    previous = label_get_current(item=item)
    # Labels are append-only: one from the past is written at that time, not moved there.
    with mock.patch("django.utils.timezone.now", return_value=at or timezone.now()):
        return Label.objects.create(
            item=item,
            level=level,
            moderator=moderator,
            origin="moderator" if moderator else "corpus",
            supersedes=previous,
            agreed_with_voter=agreed_with_voter,
            agreed_with_mlp=agreed_with_mlp,
        )


def index(level: int) -> int:
    return Rating(level).index


def make_evaluation(
    version: ModelVersion,
    y_true: list[int],
    y_pred: dict[str, list[int]],
    *,
    at: datetime | None = None,
    bootstrap: int = 0,
    data: str = "test",
) -> Evaluation:
    """An evaluation whose report has evaluate_bundle's shape, built from class indices:
    `y_pred` maps "suggested", "voter", "mlp" and expert names to predictions (-1 abstains)."""
    import numpy as np

    truth = np.asarray(y_true)
    models = {}
    for name, predicted in y_pred.items():
        if name == "suggested":
            continue
        predicted = np.asarray(predicted)
        spoke = predicted >= 0
        models[name] = model_report(truth[spoke], predicted[spoke], bootstrap)
        models[name]["abstained"] = int((~spoke).sum())
    report = {
        "n": len(truth),
        "suggestion_policy": "max",
        **model_report(truth, np.asarray(y_pred["suggested"]), bootstrap),
        "models": models,
        "excluded": 0,
    }
    evaluation = Evaluation.objects.create(
        model_version=version, data=data, n=len(truth), report=report
    )
    if at is not None:
        Evaluation.objects.filter(pk=evaluation.pk).update(created_at=at)
        evaluation.refresh_from_db()
    return evaluation


@pytest.fixture
def admin_client(client, carol) -> Client:
    client.force_login(carol)
    return client


@pytest.fixture
def champion(db) -> ModelVersion:
    return make_version("v1")


@pytest.fixture
def candidate(db) -> ModelVersion:
    return make_version("v2", status=ModelVersion.Status.CANDIDATE)
