"""The ingestion API (`/api/v1/`): create and read items, rate a prompt at generation time.

Views parse with a serializer, call one service or selector, and answer. Every error is
`{"error": message, "field": name or null}` (moderation.media.api_errors).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from moderation.inference.services import rate_now
from moderation.media.models import MediaItem
from moderation.media.parsers import LimitedJSONParser, LimitedMultiPartParser
from moderation.media.selectors import item_get, item_list
from moderation.media.serializers import (
    ErrorSerializer,
    ItemCreatedSerializer,
    ItemCreateSerializer,
    ItemPageSerializer,
    ItemSerializer,
    RateRequestSerializer,
    RateResponseSerializer,
    bundle_prediction_data,
    item_data,
)
from moderation.media.services import item_create
from moderation.media.validation import ValidationProblem, tags_clean, text_clean
from moderation.review.models import ReviewState
from rating_models.examples import Example

_ERROR_TEXT = {
    400: "Malformed or invalid input; `field` names the culprit.",
    401: "Missing, unknown or inactive client token.",
    404: "No such item.",
    413: "Body, image or pixel count beyond the configured caps.",
    415: "Unsupported content type.",
    503: "No champion model: nothing can be rated yet.",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {c: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[c]) for c in codes}


class _ItemPages(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


@extend_schema(
    methods=["GET"],
    operation_id="items_list",
    summary="List this client's items, newest first, optionally by review state",
    parameters=[
        OpenApiParameter("state", str, enum=list(ReviewState.State.values)),
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1},
            description="Page size (default 50; a larger one is cut to 200).",
        ),
        OpenApiParameter("offset", {"type": "integer", "minimum": 0}),
    ],
    responses={200: ItemPageSerializer, **_errors(400, 401)},
)
@extend_schema(
    methods=["POST"],
    operation_id="items_create",
    summary="Create an item (multipart with an image, or JSON for a prompt-only item)",
    description="Sending the same image, or the same external_id, again returns the stored "
    "item with 200 instead of 201. Its prediction is queued once the item is stored.",
    request={
        "multipart/form-data": ItemCreateSerializer,
        "application/json": ItemCreateSerializer,
    },
    responses={
        201: ItemCreatedSerializer,
        200: ItemCreatedSerializer,
        **_errors(400, 401, 413, 415),
    },
)
@api_view(["GET", "POST"])
@parser_classes([LimitedJSONParser, LimitedMultiPartParser])
def items(request: Request) -> Response:
    if request.method == "POST":
        return _item_create(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in ReviewState.State.values:
        raise ValidationProblem("state", f"must be one of {', '.join(ReviewState.State.values)}")
    _query_int(request, "limit", minimum=1)
    _query_int(request, "offset", minimum=0)
    paginator = _ItemPages()
    page = paginator.paginate_queryset(item_list(state=state, client=request.user), request)
    return paginator.get_paginated_response(
        [item_data(i, image_url=_image_url(request, i)) for i in page]
    )


def _query_int(request: Request, name: str, *, minimum: int) -> None:
    # DRF's pagination silently falls back to its default on a malformed value: refuse it.
    value = request.query_params.get(name)
    if value is None:
        return
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ValidationProblem(name, f"must be an integer of at least {minimum}")


def _item_create(request: Request) -> Response:
    serializer = ItemCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    upload = data.get("image")
    item, created = item_create(
        image=upload.read() if upload is not None else None,
        prompt=data["prompt"],
        negative_prompt=data["negative_prompt"],
        tags=data["tags"],
        source=data["source"] or request.user.name,
        external_id=data["external_id"],
        metadata=data["metadata"],
        client=request.user,
    )
    queued = getattr(item, "prediction_queued", None)  # set on commit by item_create
    if not created:
        item = item_get(uid=item.uid, client=request.user)  # with its predictions and labels
    # A new item is answered from memory: it has no prediction or label yet and its review
    # state was just written, so reading it back would cost three queries for nothing.
    body = {**item_data(item, image_url=_image_url(request, item), new=created), "queued": queued}
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _image_url(request: Request, item: MediaItem) -> str | None:
    return request.build_absolute_uri(item.image.url) if item.image else None


@extend_schema(
    operation_id="items_retrieve",
    summary="An item with every prediction (experts, voter, MLP) and every label",
    responses={200: ItemSerializer, **_errors(401, 404)},
)
@api_view(["GET"])
def item_detail(request: Request, uid: str) -> Response:
    item = item_get(uid=uid, client=request.user)
    if item is None:  # or another client's: it does not exist for this one
        raise NotFound("no item with this uid")
    return Response(item_data(item, image_url=_image_url(request, item)))


@extend_schema(
    operation_id="rate",
    summary="Rate a prompt now, at generation time, with the champion model",
    description="Experts that need an image or tags abstain. Nothing is stored unless "
    "`queue` is true; then the prompt is also stored as an item for review.",
    request=RateRequestSerializer,
    responses={200: RateResponseSerializer, **_errors(400, 401, 413, 415, 503)},
)
@api_view(["POST"])
@parser_classes([LimitedJSONParser])
def rate(request: Request) -> Response:
    serializer = RateRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    prompt = text_clean(data["prompt"], field="prompt")
    negative_prompt = text_clean(data["negative_prompt"], field="negative_prompt")
    tags = tags_clean(data["tags"])
    example = Example(
        id="rate",
        prompt=prompt,
        negative_prompt=negative_prompt,
        tags=None if tags is None else tuple((name, conf) for name, conf in tags),
    )
    version, prediction = rate_now(example)
    body = bundle_prediction_data(version, prediction)
    if data["queue"]:
        item, created = item_create(
            prompt=prompt,
            negative_prompt=negative_prompt,
            tags=tags,
            source=request.user.name,
            client=request.user,
        )
        body.update(uid=item.uid, created=created)
    return Response(body)


@extend_schema(exclude=True, responses={404: OpenApiTypes.OBJECT})
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(request: Request, path: str = "") -> Response:
    raise NotFound(f"no API endpoint at /api/v1/{path}")
