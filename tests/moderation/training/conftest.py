import pytest

from moderation.inference.services import predictions_create
from moderation.inference.versions import model_version_register
from moderation.media.models import MediaItem
from moderation.media.services import item_create
from moderation.review.decisions import label_create
from moderation.review.models import ReviewState
from moderation.training import selectors
from rating_models.train import BundleConfig, train_bundle
from tests.moderation.factories import png_bytes
from tests.moderation.inference.conftest import bundle_dir, champion  # noqa: F401
from tests.rating_models.bundles import EXPLICIT, SAFE, lstm_bundle_config, toy_examples

# The image expert as the presets have it: Open-NSFW (packaged, offline), cut by thresholds
# until 50 labelled images.
IMAGE_EXPERT = {"name": "image", "kind": "image", "config": {}}
# Plain pictures, a few colours and sizes: (rating level, colour, size).
PICTURES = [
    (1, (40, 120, 200), (32, 24)),
    (1, (30, 160, 60), (48, 48)),
    (1, (250, 250, 250), (64, 40)),
    (1, (90, 90, 140), (24, 36)),
    (8, (225, 170, 140), (48, 32)),
    (8, (200, 140, 110), (40, 56)),
    (8, (240, 190, 160), (64, 64)),
    (8, (180, 120, 100), (36, 28)),
]


def labelled_item(prompt: str, level: int, *, split: str) -> MediaItem:
    item = MediaItem.objects.create(prompt=prompt, tags=[["cat", 0.9]], split=split, source="t")
    ReviewState.objects.create(item=item)
    label_create(item=item, level=level, moderator=None, origin="test")
    return item


def labelled_picture(level: int, colour, size, *, split: str, prompt: str) -> MediaItem:
    """An item with a small Pillow-made image, labelled, made by the ingestion service."""
    item, created = item_create(
        image=png_bytes(size=size, colour=colour),
        prompt=prompt,
        tags=[["cat", 0.9]],
        source="t",
        label=level,
        split=split,
    )
    assert created
    return item


def labelled_items() -> list[MediaItem]:
    """Labelled items in both splits (24 each), predicted by the champion."""
    items = []
    for n in range(3):
        for split in ("train", "test"):
            items += [labelled_item(f"{p} {n}", 1, split=split) for p in SAFE]
            items += [labelled_item(f"{p} {n}", 8, split=split) for p in EXPLICIT]
    predictions_create(item_ids=[i.pk for i in items])
    return items


@pytest.fixture
def labelled(champion):  # noqa: F811
    """Labelled items in both splits, predicted by the champion."""
    return labelled_items()


@pytest.fixture(scope="session")
def image_bundle_dir(tmp_path_factory):
    """The tiny bundle with an image expert, trained on prompts alone: its MLP never saw the
    image expert present, so it does not read it."""
    directory = tmp_path_factory.mktemp("image-champion") / "bundle"
    spec = lstm_bundle_config()
    experts = [*spec["experts"], IMAGE_EXPERT]
    # Two folds, as the library's tests: its retrains take the champion's configuration.
    config = BundleConfig.from_preset("fast", {**spec, "experts": experts, "folds": 2})
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


@pytest.fixture
def image_champion(db, image_bundle_dir):
    return model_version_register(path=image_bundle_dir, promote=True)


@pytest.fixture
def labelled_pictures(image_champion):
    """Labelled prompt-only items in both splits (enough training items that the hashed
    validation share is never empty) and labelled items with images, of which three in four
    are training items; all predicted by the image champion."""
    items = []
    for n in range(6):
        for split in ("train", "test") if n < 3 else ("train",):
            items += [labelled_item(f"{p} {n}", 1, split=split) for p in SAFE]
            items += [labelled_item(f"{p} {n}", 8, split=split) for p in EXPLICIT]
    for k in range(2 * len(PICTURES)):
        level, colour, size = PICTURES[k % len(PICTURES)]
        colour = tuple(c - 9 * (k // len(PICTURES)) for c in colour)  # new bytes, a new item
        prompt = (SAFE if level == 1 else EXPLICIT)[k % 4]
        split = "test" if k % 4 == 0 else "train"
        items.append(labelled_picture(level, colour, size, split=split, prompt=f"{prompt} {k}"))
    predictions_create(item_ids=[i.pk for i in items])
    return items


def fitted_images() -> int:
    """Labelled training items with an image that a retrain fits on (validation held out)."""
    return selectors.training_images()["fitted"]


def run_promotions() -> list:
    """Run the promotions the views queued, as the inference worker would (tests queue Celery
    messages to memory, and their transactions never commit)."""
    from moderation.training import registry
    from moderation.training.models import Promotion

    queued = Promotion.objects.filter(state=Promotion.State.QUEUED).order_by("pk")
    return [registry.promotion_execute(p.pk) for p in queued]


@pytest.fixture
def bounded_champion(bounded_bundle_dir, settings):
    settings.GATE_MIN_EXPLICIT = 0
    settings.GATE_F1_TOLERANCE = 1.0
    settings.GATE_SEVERE_TOLERANCE = 100
    version = model_version_register(path=bounded_bundle_dir, promote=True)
    labelled_items()
    return version
