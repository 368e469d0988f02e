"""API shapes: requests are parsed here (types only: the ingestion service validates the
content), responses are built from plain dicts so the schema documents exactly what is sent."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.labels import label_get_current
from moderation.review.models import Label
from rating_models.bundle import BundlePrediction
from rating_models.ratings import LABELS, Rating, parse_label

TAGS_SCHEMA = {
    "type": "array",
    "nullable": True,
    "description": (
        "[[name, confidence], ...] with confidence in 0-1; null when no tagger has run. "
        "In multipart requests, a JSON string."
    ),
    "items": {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "items": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    },
}


@extend_schema_field(TAGS_SCHEMA)
class TagsField(serializers.JSONField):
    pass


def _text(**kwargs: Any) -> serializers.CharField:
    # Kept verbatim: stripping would change what is rated and what the moderator reads.
    return serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, default="", **kwargs
    )


# ------------------------------------------------------------------------------- requests


class ItemCreateSerializer(serializers.Serializer):
    image = serializers.FileField(
        required=False, help_text="The image file (multipart only); omit for a prompt-only item."
    )
    prompt = _text(help_text="Filled from Automatic1111 or ComfyUI metadata when left empty.")
    negative_prompt = _text()
    tags = TagsField(required=False, allow_null=True, default=None)
    source = _text(help_text="Defaults to the API client's name.")
    external_id = _text(help_text="Your own id: sending it again returns the same item.")
    metadata = serializers.JSONField(
        required=False, default=dict, help_text="A JSON object (a JSON string in multipart)."
    )

    def validate(self, attrs: dict) -> dict:
        if attrs.get("image") is None and not attrs["prompt"].strip() and not attrs["tags"]:
            raise serializers.ValidationError(
                "nothing to rate: send an image, a prompt or tags", code="empty"
            )
        return attrs


class RateRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=False)
    negative_prompt = _text()
    tags = TagsField(required=False, allow_null=True, default=None)
    queue = serializers.BooleanField(
        required=False, default=False, help_text="Also store the prompt for review."
    )


# ------------------------------------------------------------------------------ responses


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    field = serializers.CharField(allow_null=True)


class RatingSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=[*LABELS, "Blocked"])
    level = serializers.IntegerField()


class ExpertSerializer(serializers.Serializer):
    rating = serializers.CharField(allow_null=True, help_text="null when the expert abstained")
    level = serializers.IntegerField(allow_null=True)
    probs = serializers.DictField(child=serializers.FloatField(), allow_null=True)


def _mlp_experts_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(),
        help_text="The experts whose features the MLP read for this item: not those that "
        "abstained, nor those the MLP was never trained with (the image expert until enough "
        "labelled images; it still votes).",
    )


class PublishBoundSerializer(serializers.Serializer):
    dcm_rate = serializers.FloatField(
        help_text="α: the expected share of published items rated below their true rating."
    )
    confidence = serializers.FloatField(help_text="The probability the bound holds (1 - δ).")


class AutoPublishSerializer(serializers.Serializer):
    publish = serializers.BooleanField(
        help_text="The rating may be published without a moderator's review."
    )
    bound = PublishBoundSerializer()


def _auto_publish_field() -> AutoPublishSerializer:
    return AutoPublishSerializer(
        allow_null=True,
        help_text="Whether the model version's bounded rule publishes this rating unreviewed, "
        "with the bound it holds to: among the items it publishes, the down-class rate is at "
        "most `bound.dcm_rate` with probability `bound.confidence`. null when the version has "
        "no such rule. Flagged items are never published.",
    )


class PredictionSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    rating = serializers.CharField(help_text="The suggested rating.")
    level = serializers.IntegerField()
    voter = RatingSerializer(allow_null=True, help_text="null when every voter abstained")
    mlp = RatingSerializer()
    mlp_probs = serializers.DictField(child=serializers.FloatField())
    mlp_experts = _mlp_experts_field()
    experts = serializers.DictField(child=ExpertSerializer())
    flagged = serializers.BooleanField()
    auto_publish = _auto_publish_field()
    created_at = serializers.DateTimeField(required=False)


class LabelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rating = serializers.CharField(help_text="PG ... XXX, or Blocked")
    level = serializers.IntegerField()
    moderator = serializers.CharField(allow_null=True)
    origin = serializers.CharField()
    created_at = serializers.DateTimeField()
    supersedes = serializers.IntegerField(allow_null=True)
    agreed_with_voter = serializers.BooleanField(allow_null=True)
    agreed_with_mlp = serializers.BooleanField(allow_null=True)


class PurgeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    by = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class ItemSerializer(serializers.Serializer):
    uid = serializers.UUIDField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    image_sha256 = serializers.CharField(allow_null=True)
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField()
    tags = TagsField()
    metadata = serializers.JSONField()
    split = serializers.ChoiceField(choices=["train", "test"])
    received_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=["queued", "claimed", "done"], allow_null=True)
    prediction_pending = serializers.BooleanField()
    predictions = PredictionSerializer(many=True)
    labels = LabelSerializer(many=True)
    current_label = LabelSerializer(allow_null=True)
    purged = PurgeSerializer(
        allow_null=True, help_text="The content was removed (illegal material): a tombstone."
    )
    supersedes = serializers.UUIDField(
        allow_null=True, help_text="The item whose content this one corrects."
    )


class ItemCreatedSerializer(ItemSerializer):
    queued = serializers.BooleanField(
        allow_null=True,
        help_text="false when the prediction could not be queued (it is retried later); "
        "null when the item already existed",
    )


class ItemPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ItemSerializer(many=True)


class RateResponseSerializer(serializers.Serializer):
    rating = serializers.CharField(help_text="The suggested rating.")
    level = serializers.IntegerField()
    voter = RatingSerializer(allow_null=True)
    mlp = RatingSerializer()
    mlp_probs = serializers.DictField(child=serializers.FloatField())
    mlp_experts = _mlp_experts_field()
    experts = serializers.DictField(child=ExpertSerializer())
    flagged = serializers.BooleanField()
    auto_publish = _auto_publish_field()
    model_version = serializers.CharField()
    uid = serializers.UUIDField(required=False, help_text="Only when `queue` was true.")
    created = serializers.BooleanField(required=False)


# ------------------------------------------------------------------ building response data


def rating_data(level: int | None) -> dict[str, Any] | None:
    if level is None:
        return None
    label = parse_label(level)
    return {"rating": label.label, "level": label.level}


def _probs(values: Any) -> dict[str, float] | None:
    return None if values is None else dict(zip(LABELS, (float(p) for p in values), strict=True))


def prediction_data(prediction: Prediction) -> dict[str, Any]:
    suggested = rating_data(prediction.suggested_rating)
    return {
        "model_version": prediction.model_version.version,
        **suggested,
        "voter": rating_data(prediction.voter_rating),
        "mlp": rating_data(prediction.mlp_rating),
        "mlp_probs": _probs(prediction.mlp_probs),
        "mlp_experts": list(prediction.mlp_experts),
        "experts": {
            name: {
                **(rating_data(out["rating"]) or {"rating": None, "level": None}),
                "probs": _probs(out["probs"]),
            }
            for name, out in prediction.experts.items()
        },
        "flagged": prediction.flagged,
        "auto_publish": auto_publish_data(prediction.auto_publish, prediction.model_version),
        "created_at": prediction.created_at,
    }


def auto_publish_data(publish: bool | None, version: ModelVersion) -> dict[str, Any] | None:
    """Whether the version's bounded rule publishes the rating unreviewed, with its bound (the
    rule in the version's manifest); None when the version has no such rule."""
    rule = version.manifest.get("suggestion")
    if publish is None or not rule:
        return None
    bound = {"dcm_rate": rule["alpha"], "confidence": round(1 - rule["publish_delta"], 6)}
    return {"publish": publish, "bound": bound}


def bundle_prediction_data(
    version: ModelVersion, prediction: BundlePrediction, row: int = 0
) -> dict:
    """What the bundle said about one row, in the same shape as a stored prediction."""

    def level(index: int) -> int | None:
        return None if index < 0 else Rating.from_index(int(index)).level

    experts = {}
    for name, out in prediction.experts.items():
        abstained = bool(out.abstain[row])
        experts[name] = {
            **(rating_data(None if abstained else level(out.ratings[row])) or {}),
            "probs": None if abstained else _probs(out.probs[row]),
        }
        experts[name].setdefault("rating", None)
        experts[name].setdefault("level", None)
    return {
        **rating_data(level(prediction.suggested[row])),
        "voter": rating_data(level(prediction.voter[row])),
        "mlp": rating_data(level(prediction.mlp[row])),
        "mlp_probs": _probs(prediction.mlp_probs[row]),
        "mlp_experts": prediction.mlp_experts(row),
        "experts": experts,
        "flagged": bool(prediction.flagged[row]),
        "auto_publish": auto_publish_data(prediction.publishes(row), version),
        "model_version": version.version,
    }


def label_data(label: Label) -> dict[str, Any]:
    return {
        "id": label.pk,
        **rating_data(label.level),
        "moderator": label.moderator.get_username() if label.moderator else None,
        "origin": label.origin,
        "created_at": label.created_at,
        "supersedes": label.supersedes_id,
        "agreed_with_voter": label.agreed_with_voter,
        "agreed_with_mlp": label.agreed_with_mlp,
    }


def item_data(
    item: MediaItem, *, image_url: str | None = None, new: bool = False
) -> dict[str, Any]:
    """The item with its predictions (newest first), labels (oldest first) and current label.

    `new`: the item was created unlabelled in this request, so it has neither yet; its review
    state must be the one in memory (`item_create` leaves it there).
    """
    if new:
        predictions, labels, current = [], [], []
    else:
        predictions = sorted(item.predictions.all(), key=lambda p: p.created_at, reverse=True)
        labels = sorted(item.labels.all(), key=lambda label: (label.created_at, label.pk))
        # `review.labels`'s current label, prefetched by `media.selectors` (or read here).
        current = getattr(item, "current_label_list", None)
        if current is None:
            current = [label] if (label := label_get_current(item=item)) else []
    review = item.review if _has_review(item) else None
    return {
        "uid": item.uid,
        "source": item.source,
        "external_id": item.external_id,
        "image_url": image_url,
        "width": item.width,
        "height": item.height,
        "image_sha256": item.image_sha256,
        "prompt": item.prompt,
        "negative_prompt": item.negative_prompt,
        "tags": item.tags,
        "metadata": item.metadata,
        "split": item.split,
        "received_at": item.received_at,
        "state": review.state if review else None,
        "prediction_pending": not predictions,
        "predictions": [prediction_data(p) for p in predictions],
        "labels": [label_data(label) for label in labels],
        "current_label": label_data(current[0]) if current else None,
        # Read only when set (a purge, a correction: rare), so a page of items costs no join.
        "purged": _purge_data(item),
        "supersedes": item.supersedes.uid if item.supersedes_id else None,
    }


def _purge_data(item: MediaItem) -> dict[str, Any] | None:
    if not item.is_purged:
        return None
    by = item.purged_by.get_username() if item.purged_by_id else None
    return {"at": item.purged_at, "by": by, "reason": item.purge_reason}


def _has_review(item: MediaItem) -> bool:
    try:
        item.review  # noqa: B018 (the one-to-one raises when the item has no review state)
    except MediaItem.review.RelatedObjectDoesNotExist:
        return False
    return True
