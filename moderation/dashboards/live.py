"""Live figures: each version scored on the moderators' labels, in the evaluation report's
shape, and the share of items its bounded rule published unreviewed.

Counted in SQL from the current labels (a million predictions and 100,000 labels,
bench/pages.py), then scored in Python; a fixed number of queries whatever the labels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from moderation.inference.models import ModelVersion, Prediction
from moderation.review.labels import current_labels
from moderation.training.models import TrainedItem
from rating_models.metrics import model_report
from rating_models.ratings import RATINGS, Rating
from rating_models.risk import automation

COMBINED = ("suggested", "voter", "mlp")
_RATING_LEVELS = sorted(r.level for r in RATINGS)


def labelled(
    predictions: QuerySet[Prediction], levels: Iterable[int], *, moderators_only: bool = False
) -> QuerySet[Prediction]:
    """The predictions whose item's current label has one of `levels`, annotated with it
    (`label_level`, `label_moderator`, `label_at`). `moderators_only`: a current label that a
    moderator wrote, not one imported with the item (the corpus's, or a platform's).

    The current label is `review.labels`'s, the one every reader uses. The join starts from
    the labels, so a million predictions of unlabelled items are never read; the annotations
    reuse the filter's join (one row per prediction).
    """
    levels = list(levels)
    current = current_labels().filter(level__in=levels)
    if moderators_only:
        current = current.filter(moderator__isnull=False)
    # The level again on the joined label: for the explicit levels PostgreSQL then reads the
    # few such labels through their index, not every label.
    return predictions.filter(item__labels__in=current, item__labels__level__in=levels).annotate(
        label_level=F("item__labels__level"),
        label_moderator=F("item__labels__moderator__username"),
        label_at=F("item__labels__created_at"),
    )


def _index(level: int | None) -> int:
    """A level's class index, -1 for an abstention (as `BundlePrediction.ratings` has it)."""
    return -1 if level is None else Rating(level).index


def _report(y_true: list[int], outputs: dict[str, Any], bootstrap: int) -> dict[str, Any]:
    truth = np.asarray(y_true, dtype=np.int64)
    models = {}
    for name, predicted in outputs.items():
        if name == "suggested":
            continue
        predicted = np.asarray(predicted, dtype=np.int64)
        spoke = predicted >= 0
        models[name] = model_report(truth[spoke], predicted[spoke], bootstrap)
        models[name]["abstained"] = int((~spoke).sum())
    suggested = np.asarray(outputs["suggested"], dtype=np.int64)
    return {"n": len(truth), **model_report(truth, suggested, bootstrap), "models": models}


def _expert_names(version_ids: list[int] | None) -> dict[int, list[str]]:
    """Each version's experts, by version id, read from its latest prediction (every
    prediction of a version holds all its bundle's experts, abstaining or not)."""
    latest = Prediction.objects.filter(model_version=OuterRef("pk")).order_by("-pk")
    versions = ModelVersion.objects.annotate(sample=Subquery(latest.values("experts")[:1]))
    if version_ids is not None:
        versions = versions.filter(pk__in=version_ids)
    return {
        pk: sorted(name for name in (sample or {}) if name not in COMBINED)
        for pk, sample in versions.values_list("pk", "sample")
    }


def live_reports(
    versions: Iterable[ModelVersion] | None = None, *, bootstrap: int = 0
) -> dict[int, dict[str, Any]]:
    """`live_report` for several versions (all of them by default), by version id. A version
    whose bounded rule publishes items unreviewed also has `automation`: among its labelled
    items, the share published and the DCM among exactly those; among every item it rated,
    `rated_share`.

    Two queries whatever the number of labels (three with a bounded rule): the experts' names,
    then the labelled predictions counted by (version, label, every model's rating), which the
    scoring expands back into one row per item. Versions without a labelled prediction are
    absent.
    """
    ids = None if versions is None else [v.pk for v in versions]
    experts = _expert_names(ids)
    names = sorted({name for version_names in experts.values() for name in version_names})
    spoken = {
        f"expert_{i}": KeyTransform("rating", KeyTransform(name, "experts"))
        for i, name in enumerate(names)
    }
    rows = (
        labelled(Prediction.objects.all(), _RATING_LEVELS, moderators_only=True)
        # Honest: the version rated the item before the moderator labelled it, and did not
        # learn from it (a retrain's training items, `TrainedItem`).
        .filter(created_at__lt=F("label_at"))
        .exclude(
            Exists(
                TrainedItem.objects.filter(
                    model_version=OuterRef("model_version"), item=OuterRef("item")
                )
            )
        )
        .annotate(**spoken)
    )
    if ids is not None:
        rows = rows.filter(model_version__in=ids)
    combined = ("suggested_rating", "voter_rating", "mlp_rating", "auto_publish")
    counted = (
        rows.values("model_version_id", "label_level", *combined, *spoken)
        .annotate(n=Count("pk"))
        .order_by()
    )
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in counted:
        groups[row["model_version_id"]].append(row)
    reports, shares = {}, None
    for version_id, group in groups.items():
        counts = [row["n"] for row in group]

        def column(key: str, group=group, counts=counts) -> np.ndarray:
            indices = [_index(row[key]) for row in group]
            return np.repeat(np.asarray(indices, dtype=np.int64), counts)

        outputs = {"suggested": column("suggested_rating")}
        for i, name in enumerate(names):
            if name in experts[version_id]:
                outputs[name] = column(f"expert_{i}")
        outputs["voter"] = column("voter_rating")
        outputs["mlp"] = column("mlp_rating")
        truth = column("label_level")
        reports[version_id] = _report(truth.tolist(), outputs, bootstrap)
        if any(row["auto_publish"] is not None for row in group):  # a bounded rule rated
            shares = published_shares(ids) if shares is None else shares
            published = np.repeat([row["auto_publish"] is True for row in group], counts)
            reports[version_id]["automation"] = {
                **automation(published, outputs["suggested"], truth),
                **shares.get(version_id, {}),
            }
    return reports


def published_shares(version_ids: Sequence[int] | None) -> dict[int, dict[str, Any]]:
    """Per version whose rule publishes: how many items it rated, and the share of them it
    published unreviewed (labelled or not). One query."""
    predictions = Prediction.objects.filter(auto_publish__isnull=False)
    if version_ids is not None:
        predictions = predictions.filter(model_version__in=version_ids)
    counted = (
        predictions.values("model_version_id")
        .annotate(rated=Count("pk"), published=Count("pk", filter=Q(auto_publish=True)))
        .order_by()
    )
    return {
        row["model_version_id"]: {
            "rated": row["rated"],
            "rated_share": row["published"] / row["rated"],
        }
        for row in counted
    }


def live_reports_recent(versions: Sequence[ModelVersion]) -> tuple[dict[int, Any], datetime]:
    """`live_reports` of these versions as counted at most DASHBOARD_LIVE_SECONDS ago, and when.

    Counting takes about a second over 100,000 labels (bench/pages.py), so the overview does
    it once a minute per web process instead of on every view; 0 counts on every call.
    """
    seconds = settings.DASHBOARD_LIVE_SECONDS
    key = "dashboards:live-reports:" + ",".join(str(v.pk) for v in versions)
    if seconds > 0 and (counted := cache.get(key)) is not None:
        return counted
    counted = (live_reports(versions), timezone.now())
    if seconds > 0:
        cache.set(key, counted, seconds)
    return counted


def live_report(version: ModelVersion, *, bootstrap: int = 0) -> dict[str, Any] | None:
    """A version's figures on live labels, in the evaluation report's shape.

    The items are those whose current label is a moderator's rating (Blocked is a decision,
    left out; a label imported with the item is not a moderator's), that this version
    predicted before that label was written, and that it was not trained on (a retrain's
    `TrainedItem`s); the truth is the current label. Each expert is scored on the
    items it did not abstain on, as `evaluate_bundle` does. None when no such item exists.
    """
    return live_reports([version], bootstrap=bootstrap).get(version.pk)
