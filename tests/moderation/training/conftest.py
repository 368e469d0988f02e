import pytest

from moderation.inference.services import predictions_create
from moderation.media.models import MediaItem
from moderation.review.models import ReviewState
from moderation.review.services import label_create
from tests.moderation.inference.conftest import bundle_dir, champion  # noqa: F401
from tests.rating_models.bundles import EXPLICIT, SAFE


def labelled_item(prompt: str, level: int, *, split: str) -> MediaItem:
    item = MediaItem.objects.create(prompt=prompt, tags=[["cat", 0.9]], split=split, source="t")
    ReviewState.objects.create(item=item)
    label_create(item=item, level=level, moderator=None, origin="test")
    return item


@pytest.fixture
def labelled(champion):  # noqa: F811
    """Labelled items in both splits, predicted by the champion."""
    items = []
    for n in range(3):
        for split in ("train", "test"):
            items += [labelled_item(f"{p} {n}", 1, split=split) for p in SAFE]
            items += [labelled_item(f"{p} {n}", 8, split=split) for p in EXPLICIT]
    predictions_create(item_ids=[i.pk for i in items])
    return items
