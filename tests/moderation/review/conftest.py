"""Review test helpers: items, predictions and people built straight with the ORM.

alice and bob are moderators; mallory is signed up but in no group. Items are made with a
split and a queued review state, predictions with empty features, so nothing here depends on
the ingestion or inference code.
"""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.review.claims import review_priorities_update
from moderation.review.models import ReviewState

_numbers = itertools.count(1)


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    """A gradient landscape: sky fading into a sunset, with a dark band of hills."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            t = y / max(height - 1, 1)
            hill = height * (0.68 + 0.06 * ((x / max(width - 1, 1)) - 0.5) ** 2 * 4)
            if y > hill:
                pixels[x, y] = (30 + int(20 * t), 60 + int(40 * t), 45)
            else:
                pixels[x, y] = (
                    int(40 + 215 * t),
                    int(90 + 90 * t * (1 - t) * 2),
                    int(200 - 120 * t),
                )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_item(
    *,
    image: bool = False,
    size: tuple[int, int] = (64, 48),
    split: str = "train",
    queued: bool = True,
    **fields,
) -> MediaItem:
    number = next(_numbers)
    fields.setdefault("source", "test")
    fields.setdefault("external_id", f"item-{number}")
    fields.setdefault("prompt", "a cat on a sofa")
    fields.setdefault("tags", [["cat", 0.93], ["sofa", 0.71]])
    item = MediaItem(split=split, **fields)
    if image:
        content = png_bytes(*size)
        item.image.save(f"item-{number}.png", ContentFile(content), save=False)
        item.width, item.height = Image.open(io.BytesIO(content)).size
    item.save()
    if queued:
        ReviewState.objects.create(item=item)
    return item


def make_version(version: str = "v1", status: str = ModelVersion.Status.CHAMPION) -> ModelVersion:
    return ModelVersion.objects.create(version=version, path=f"/bundles/{version}", status=status)


def probs_for(level: int, confidence: float = 0.7) -> list[float]:
    levels = [1, 2, 4, 8, 16]
    rest = (1 - confidence) / 4
    return [confidence if lv == level else rest for lv in levels]


def make_prediction(
    item: MediaItem,
    version: ModelVersion,
    *,
    experts: dict[str, int | None] | None = None,
    voter: int | None = 2,
    mlp: int = 2,
    mlp_probs: list[float] | None = None,
    suggested: int | None = None,
    flagged: bool = False,
    mlp_experts: list[str] | None = None,
    explanation: dict | None = None,
) -> Prediction:
    """A prediction; `experts` maps names to levels (None abstains). The suggestion defaults
    to the more restrictive of the voter and the MLP, as the product's default setting; the
    MLP reads, by default, every expert that spoke."""
    experts = {"tag_rules": 2, "lstm": 2, "minilm": 2} if experts is None else experts
    if mlp_experts is None:
        mlp_experts = [name for name, level in experts.items() if level is not None]
    prediction = Prediction.objects.create(
        item=item,
        model_version=version,
        experts={
            name: {"rating": level, "probs": None if level is None else probs_for(level)}
            for name, level in experts.items()
        },
        voter_rating=voter,
        mlp_rating=mlp,
        mlp_probs=mlp_probs or probs_for(mlp),
        suggested_rating=suggested or max(mlp, voter or 0),
        flagged=flagged,
        features=b"",
        mlp_experts=mlp_experts,
        explanation=explanation,
    )
    review_priorities_update(item_ids=[item.pk], version=version)
    return prediction


@pytest.fixture
def champion(db) -> ModelVersion:
    return make_version("v1")


@pytest.fixture
def alice_client(client, alice) -> Client:
    client.force_login(alice)
    return client
