"""Reads of predictions for the pages that show one."""

from __future__ import annotations

from moderation.inference.models import ModelVersion, Prediction


def prediction_get_shown(*, item_id: int) -> Prediction | None:
    """The prediction a moderator sees for an item: the champion's; until the champion has
    rated the item (just after a promotion or rollback), the latest of a former champion's,
    with `from_former_champion` set so the page can say so; None if neither has rated it."""
    shown = (
        Prediction.objects.filter(
            item_id=item_id,
            model_version__status__in=(ModelVersion.Status.CHAMPION, ModelVersion.Status.FORMER),
        )
        .select_related("model_version")
        .order_by("model_version__status", "-created_at", "-pk")  # "champion" < "former"
        .first()
    )
    if shown is not None:
        shown.from_former_champion = shown.model_version.status == ModelVersion.Status.FORMER
    return shown
