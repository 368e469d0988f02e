"""Reads for the review pages: the queue, the champion's prediction, history, disagreements."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.labels import is_current
from moderation.review.models import Label, ReviewState, Skip
from rating_models.ratings import RATINGS

State = ReviewState.State

# Which of the champion's outputs a disagreement is about.
MODELS = ("voter", "mlp")
# The labels a model can rate too mildly: every rating but the mildest (nothing is below PG).
# Blocked is left out: a decision, not a rating a model could have predicted.
DOWN_CLASSABLE_LEVELS = sorted(r.level for r in RATINGS)[1:]
# The review page counts the waiting items up to this many and shows more as "1000+":
# counting a million open items cost every page view over 100 ms (bench/pages.py).
QUEUE_SIZE_SHOWN = 1000


def review_state_list_open(*, moderator: AbstractBaseUser) -> QuerySet[ReviewState]:
    """Items this moderator may claim, in queue order: riskiest first, then oldest.

    Open means queued, or claimed by someone whose claim has expired; items the moderator
    skipped stay out until their skip runs out.
    """
    now = timezone.now()
    skipped = Skip.objects.filter(moderator=moderator, until__gt=now).values("item_id")
    return (
        ReviewState.objects.filter(
            Q(state=State.QUEUED) | Q(state=State.CLAIMED, claimed_until__lt=now)
        )
        .exclude(item_id__in=skipped)
        .order_by("-priority", "item_id")
    )


def review_queue_size(*, moderator: AbstractBaseUser) -> int:
    """How many items this moderator could claim, counted up to QUEUE_SIZE_SHOWN + 1 (along
    the claim's index, so the cost does not grow with the queue)."""
    return review_state_list_open(moderator=moderator)[: QUEUE_SIZE_SHOWN + 1].count()


def label_get_previous(
    *, moderator: AbstractBaseUser, exclude_item: MediaItem | None = None
) -> Label | None:
    """This moderator's latest decision, on another item than the one in front of them
    (so pressing undo twice walks further back instead of reopening the same item)."""
    labels = Label.objects.filter(moderator=moderator).select_related("item")
    if exclude_item is not None:
        labels = labels.exclude(item=exclude_item)
    return labels.order_by("-created_at", "-pk").first()


def item_get_by_uid(*, uid: str) -> MediaItem | None:
    """The item with this uid, or None for an unknown or malformed uid."""
    try:
        return MediaItem.objects.filter(uid=uid).select_related("review").first()
    except ValidationError:
        return None


def item_prediction_list(*, item: MediaItem) -> QuerySet[Prediction]:
    return item.predictions.select_related("model_version").order_by("-created_at", "-pk")


def item_label_list(*, item: MediaItem) -> QuerySet[Label]:
    """Every label, newest first, with who wrote it and what it replaced."""
    return item.labels.select_related("moderator", "supersedes", "supersedes__moderator").order_by(
        "-created_at", "-pk"
    )


def prediction_list_down_classed(
    *,
    true_level: int | None = None,
    predicted_level: int | None = None,
    model_version: str | None = None,
    model: str | None = None,
) -> QuerySet[Prediction]:
    """Predictions that rate an item below its current label: the model down-classed it.

    One row per (item, model version), annotated with the current label (`label_level`,
    `label_moderator`, `label_origin`, `label_at`), newest label first. `model` picks whose
    rating is compared ("voter", "mlp"; either by default); `predicted_level` is that model's
    rating. Blocked labels are left out: Blocked is a decision, not a rating a model could
    have predicted.

    The rows are found from the current labels, not from every prediction: the current label
    is the one no other label supersedes (`review.labels`), and only labels above PG can be
    down-classed, a fifth of them. The first page walks the labels newest first and stops
    after a page; the paginator's count reads those labels through their level index and
    their items' ratings from the index `prediction_item_ratings`, not the predictions' rows.
    The four correlated subqueries this replaced ran for each of a million predictions: 10 s a
    page (bench/pages.py).
    """
    rows = (
        Prediction.objects.filter(item__labels__level__in=DOWN_CLASSABLE_LEVELS)
        .annotate(
            label_id=F("item__labels__id"),
            label_level=F("item__labels__level"),
            label_moderator=F("item__labels__moderator__username"),
            label_origin=F("item__labels__origin"),
            label_at=F("item__labels__created_at"),
        )
        .filter(is_current("label_id"))
        .select_related("item", "model_version")
    )
    below = {
        "voter": Q(voter_rating__lt=F("label_level")),
        "mlp": Q(mlp_rating__lt=F("label_level")),
    }
    if model in below:
        rows = rows.filter(below[model])
        if predicted_level is not None:
            rows = rows.filter(**{f"{model}_rating": predicted_level})
    else:
        rows = rows.filter(below["voter"] | below["mlp"])
        if predicted_level is not None:
            rows = rows.filter(
                Q(below["voter"], voter_rating=predicted_level)
                | Q(below["mlp"], mlp_rating=predicted_level)
            )
    if true_level is not None:
        rows = rows.filter(label_level=true_level)
    if model_version:
        rows = rows.filter(model_version__version=model_version)
    return rows.order_by("-label_at", "-pk")


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-created_at")
