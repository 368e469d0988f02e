from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from moderation.media.models import MediaItem
from moderation.media.services import item_create, split_for
from moderation.media.validation import ValidationProblem
from moderation.review.models import Label, ReviewState
from tests.moderation.factories import make_item, png_bytes

pytestmark = pytest.mark.django_db


def stored_files() -> set[Path]:
    return {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}


def written() -> tuple[int, int, int, set[Path]]:
    return (
        MediaItem.objects.count(),
        ReviewState.objects.count(),
        Label.objects.count(),
        stored_files(),
    )


def uid_in_bucket(bucket: int) -> uuid.UUID:
    """A uid whose split hash falls in the given bucket (0-99)."""
    for n in range(100_000):
        uid = uuid.UUID(int=n)
        if int(hashlib.sha256((str(uid) + "/split").encode()).hexdigest(), 16) % 100 == bucket:
            return uid
    raise AssertionError("no uid found")


# ---------------------------------------------------------------------------- de-duplication


def test_the_same_image_twice_is_one_item() -> None:
    image = png_bytes()
    first, created = item_create(image=image, prompt="a cat")
    again, created_again = item_create(image=image, prompt="something else")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert MediaItem.objects.count() == 1


def test_the_same_external_id_twice_is_one_item() -> None:
    first, _ = item_create(prompt="a cat", source="civitai", external_id="42")
    again, created = item_create(prompt="a dog", source="civitai", external_id="42")
    assert (again.pk, created) == (first.pk, False)


def test_the_same_external_id_from_another_source_is_another_item() -> None:
    item_create(prompt="a cat", source="civitai", external_id="42")
    _, created = item_create(prompt="a cat", source="corpus", external_id="42")
    assert created


def test_prompt_only_items_are_never_merged() -> None:
    make_item(prompt="a cat")
    make_item(prompt="a cat")
    assert MediaItem.objects.count() == 2


# ------------------------------------------------------------------------------------ split


def test_an_explicit_test_split_is_kept() -> None:
    assert make_item(split="test").split == "test"


def test_the_val_split_is_stored_as_train() -> None:
    assert make_item(split="val").split == "train"


def test_a_new_item_gets_the_split_of_its_uid_hash() -> None:
    item = make_item()
    assert item.split == split_for(item.uid)


def test_the_split_hash_is_the_corpus_rule() -> None:
    assert split_for(uid_in_bucket(0)) == "test"
    assert split_for(uid_in_bucket(19)) == "test"
    # 0.2 * 100 is 20.000000000000004: bucket 20 must still be train.
    assert split_for(uid_in_bucket(20)) == "train"
    assert split_for(uid_in_bucket(99)) == "train"


def test_the_test_fraction_is_a_setting(settings) -> None:
    settings.TEST_FRACTION = 0.5
    assert split_for(uid_in_bucket(40)) == "test"
    settings.TEST_FRACTION = 0.0
    assert split_for(uid_in_bucket(0)) == "train"


def test_about_the_test_fraction_of_new_items_is_test() -> None:
    splits = [split_for(uuid.uuid4()) for _ in range(4000)]
    assert 0.17 < splits.count("test") / len(splits) < 0.23


# ----------------------------------------------------------------------- review and labels


def test_an_item_without_a_label_waits_in_the_review_queue() -> None:
    item = make_item()
    assert item.review.state == ReviewState.State.QUEUED
    assert not item.labels.exists()


def test_an_item_nobody_asked_to_review_has_no_review_state() -> None:
    item = make_item(queue_for_review=False)
    assert not ReviewState.objects.filter(item=item).exists()


def test_an_imported_label_is_recorded_without_a_moderator_and_closes_the_review() -> None:
    item = make_item(label="X", label_origin="corpus")
    label = item.labels.get()
    assert (label.level, label.moderator, label.origin) == (8, None, "corpus")
    assert ReviewState.objects.get(item=item).state == ReviewState.State.DONE


def test_an_imported_blocked_label_is_kept() -> None:
    item = make_item(label=32, label_origin="civitai")
    assert item.labels.get().is_blocked


def test_the_image_is_stored_as_a_png_named_by_the_uid() -> None:
    item = make_item(image=png_bytes(size=(30, 20)))
    assert item.image.name.endswith(f"{item.uid}.png")
    assert (item.width, item.height) == (30, 20)
    assert Path(item.image.path).is_file()


def test_image_metadata_fills_an_empty_prompt() -> None:
    info = PngInfo()
    info.add_text("parameters", "a red car\nNegative prompt: blurry\nSteps: 20")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG", pnginfo=info)
    item = make_item(image=out.getvalue(), prompt="")
    assert (item.prompt, item.negative_prompt) == ("a red car", "blurry")
    assert item.metadata["generation"]["generator"] == "automatic1111"


def test_the_prediction_is_queued_once_the_item_is_committed(
    django_capture_on_commit_callbacks,
) -> None:
    with (
        mock.patch("moderation.inference.tasks.predict_items.delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        item = make_item()
        delay.assert_not_called()
    assert len(callbacks) == 1
    delay.assert_called_once_with([item.pk], gather=True)
    assert item.prediction_queued is True


def test_a_broker_outage_does_not_fail_ingestion(django_capture_on_commit_callbacks) -> None:
    with (
        mock.patch(
            "moderation.inference.tasks.predict_items.delay", side_effect=ConnectionError("down")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        item = make_item()
    assert item.prediction_queued is False
    assert MediaItem.objects.filter(pk=item.pk).exists()


# --------------------------------------------------------------------- nothing written on error


@pytest.mark.parametrize(
    "fields",
    [
        {"tags": [["cat", 2.0]]},
        {"prompt": "a\x00cat"},
        {"label": "PG-17"},
        {"split": "holdout"},
        {"metadata": ["not", "an", "object"]},
        {"image": b"not an image"},
    ],
)
def test_nothing_is_written_when_validation_fails(fields: dict) -> None:
    before = written()
    with pytest.raises(ValidationProblem):
        item_create(**{"image": png_bytes(), **fields})
    assert written() == before


def test_a_failed_storage_write_leaves_no_row() -> None:
    before = written()
    with (
        mock.patch.object(FileSystemStorage, "_save", side_effect=OSError("disk full")),
        pytest.raises(OSError),
    ):
        item_create(image=png_bytes(), label="R")
    assert written() == before


def test_a_failed_database_write_removes_the_stored_file() -> None:
    before = written()
    with (
        mock.patch("moderation.media.services.label_create", side_effect=DatabaseError("gone")),
        pytest.raises(DatabaseError),
    ):
        item_create(image=png_bytes(), label="R")
    assert written() == before
