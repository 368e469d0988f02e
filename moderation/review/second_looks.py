"""The label-error pass: find labels that are probably wrong and send them to a second look.

Confident learning (`rating_models.label_errors`, cleanlab) needs out-of-sample probabilities
for every label it judges. The champion's bundle keeps them for the items its experts trained
on (its calibration set: the MLP's out-of-fold probabilities over train + val); every other
labelled item has the champion's stored prediction, made by a model that never saw its label.
The flagged labels become second looks, highest down-class risk first, for a moderator other
than the one who labelled (`review.task_claims.second_look_open`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from moderation.inference.bundles import bundle_path, champion
from moderation.inference.models import Prediction
from moderation.review.labels import current_labels
from moderation.review.models import Label, ReviewTask
from moderation.review.task_claims import second_look_open
from rating_models.calibration import read_calibration
from rating_models.label_errors import find_label_errors
from rating_models.ratings import RATINGS, Rating

RATED_LEVELS = [r.level for r in RATINGS]  # Blocked is a decision, not a rating: left out


@dataclass(frozen=True)
class LabelErrorReport:
    scored: int  # current labels with out-of-sample probabilities
    from_bundle: int  # of those, from the bundle's out-of-fold probabilities
    found: int  # flagged by confident learning
    opened: int  # second looks opened now (the rest had one, or passed the limit)
    version: str = ""


def _probabilities(version, labels: list[Label]) -> tuple[dict[int, np.ndarray], int]:
    """Out-of-sample probabilities by label id: the bundle's out-of-fold rows first (matched by
    item uid, or by the corpus id an imported item keeps), the stored predictions after."""
    probs: dict[int, np.ndarray] = {}
    calibration = read_calibration(bundle_path(version))
    if calibration is not None:
        row = {item_id: i for i, item_id in enumerate(calibration.ids)}
        for label in labels:
            i = row.get(str(label.item.uid), row.get(label.item.external_id))
            if i is not None:
                probs[label.pk] = calibration.probs[i]
    from_bundle = len(probs)
    rest = {label.item_id: label.pk for label in labels if label.pk not in probs}
    stored = Prediction.objects.filter(model_version=version, item_id__in=list(rest)).order_by(
        "item_id", "-created_at"
    )
    for item_id, mlp_probs in stored.values_list("item_id", "mlp_probs"):
        label_id = rest[item_id]
        if label_id not in probs and mlp_probs:
            probs[label_id] = np.asarray(mlp_probs, dtype=np.float64)
    return probs, from_bundle


def label_error_pass(
    *,
    limit: int | None = None,
    actor: AbstractBaseUser | None = None,
    progress: Callable[[str], None] | None = None,
) -> LabelErrorReport:
    """Score every current rated label, open second looks for the flagged ones (at most
    `limit`, LABEL_ERRORS_LIMIT by default), highest down-class risk first. A label that had a
    second look already is not asked about again."""
    limit = settings.LABEL_ERRORS_LIMIT if limit is None else limit
    version = champion()
    if version is None:
        return LabelErrorReport(0, 0, 0, 0)
    say = progress or (lambda _line: None)
    labels = list(
        current_labels()
        .filter(level__in=RATED_LEVELS, item__purged_at__isnull=True)
        .select_related("item", "moderator")
    )
    say(f"{len(labels)} current labels")
    probs, from_bundle = _probabilities(version, labels)
    scored = [label for label in labels if label.pk in probs]
    say(f"{len(scored)} with out-of-sample probabilities ({from_bundle} from the bundle)")
    if not scored:
        return LabelErrorReport(0, 0, 0, 0, version.version)
    by_id = {str(label.pk): label for label in scored}
    try:
        issues = find_label_errors(
            list(by_id),
            np.array([Rating.parse(label.level).index for label in scored]),
            np.stack([probs[label.pk] for label in scored]),
        )
    except ValueError as error:  # too few labels of some rating to judge
        say(f"not run: {error}")
        return LabelErrorReport(len(scored), from_bundle, 0, 0, version.version)
    asked = set(
        ReviewTask.objects.filter(
            Q(kind=ReviewTask.Kind.SECOND_LOOK), label_id__in=[int(i.id) for i in issues]
        ).values_list("label_id", flat=True)
    )
    opened = 0
    for issue in issues:
        if opened >= limit:
            break
        label = by_id[issue.id]
        if label.pk in asked:
            continue
        likely = RATINGS[issue.likely].label
        reason = (
            f"likely label error: the model rates it {likely}, with a "
            f"{issue.down_class_risk:.0%} chance it is above {RATINGS[issue.given].label}"
        )
        if second_look_open(
            label=label, reason=reason, priority=issue.down_class_risk, actor=actor
        ):
            opened += 1
    say(f"{len(issues)} likely label errors, {opened} sent to a second look")
    return LabelErrorReport(len(scored), from_bundle, len(issues), opened, version.version)
