"""Poison items: one item that cannot be read or rated fails alone, with its reason, and the
rest of its batch is stored; the sweep queues neither failed items nor items whose message is
still within its lease (RATING_LEASE_SECONDS), and does queue those whose lease ran out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

from moderation.dispatch import send
from moderation.inference import bundles, services
from moderation.inference.models import Prediction, RatingDispatch
from moderation.inference.tasks import predict_items, sweep_unpredicted
from moderation.media.models import MediaItem
from tests.moderation.factories import make_item, png_bytes
from tests.moderation.inference.conftest import make_items
from tests.moderation.worker import broker, wait_for, worker

pytestmark = pytest.mark.django_db

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


def image_items(n: int) -> list[MediaItem]:
    """Items with an image, stored by the ingestion service (its file on disk)."""
    return [make_item(prompt=f"a cat, study {k}", image=png_bytes()) for k in range(n)]


def failure(item: MediaItem) -> tuple[bool, str]:
    row = RatingDispatch.objects.get(item=item)
    return row.failed_at is not None, row.failure


def dispatched_ago(items: list[MediaItem], seconds: float) -> None:
    RatingDispatch.objects.filter(item__in=items).update(
        dispatched_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.fixture
def sent(monkeypatch) -> list[list[int]]:
    """The batches the sweep queues (the test broker is memory: nothing would run them)."""
    batches: list[list[int]] = []
    monkeypatch.setattr(predict_items, "delay", lambda ids, **kwargs: batches.append(ids))
    return batches


def test_one_unreadable_image_fails_alone_and_the_rest_of_its_batch_is_rated(champion, settings):
    items = image_items(settings.INFERENCE_BATCH_SIZE)
    poison = items[17]
    Path(poison.image.path).write_bytes(b"this is not an image")  # the row cannot change

    assert predict_items([i.pk for i in items]) == 63

    rated = set(Prediction.objects.filter(model_version=champion).values_list("item_id", flat=True))
    assert rated == {i.pk for i in items} - {poison.pk}
    assert failure(poison) == (True, "the image could not be read: cannot identify image file")
    # Rated items no longer wait: only the failed one keeps a dispatch row.
    assert list(RatingDispatch.objects.values_list("item_id", flat=True)) == [poison.pk]


def truncate(item: MediaItem, settings) -> None:
    path = Path(item.image.path)
    path.write_bytes(path.read_bytes()[:60])


def remove(item: MediaItem, settings) -> None:
    Path(item.image.path).unlink()


def bomb(item: MediaItem, settings) -> None:
    settings.MAX_IMAGE_PIXELS = 32 * 24  # the good image's size: the poison's 64x48 is over


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (truncate, "the image could not be read: "),
        (remove, "the image file is missing"),
        (bomb, "the image is a decompression bomb (64x48 pixels)"),
    ],
)
def test_each_kind_of_unreadable_image_fails_alone_with_its_reason(
    champion, settings, spoil, reason
):
    good = make_item(prompt="a cat on a sofa", image=png_bytes(size=(32, 24)))
    poison = make_item(prompt="a dog in the park", image=png_bytes(size=(64, 48)))
    spoil(poison, settings)

    assert predict_items([good.pk, poison.pk]) == 1

    assert Prediction.objects.filter(item=good).exists()
    failed, why = failure(poison)
    assert failed and why.startswith(reason)


def test_a_failed_item_is_not_read_again_until_it_is_retried(champion):
    (poison,) = image_items(1)
    Path(poison.image.path).write_bytes(b"garbage")
    predict_items([poison.pk])
    first = RatingDispatch.objects.get(item=poison).failed_at

    Path(poison.image.path).write_bytes(png_bytes())  # fixed, but nobody retried it
    assert predict_items([poison.pk]) == 0  # a duplicate message or a gathering batch
    assert RatingDispatch.objects.get(item=poison).failed_at == first
    assert not Prediction.objects.filter(item=poison).exists()

    assert services.rating_retry(item=poison)
    assert predict_items([poison.pk]) == 1
    assert not RatingDispatch.objects.filter(item=poison).exists()


def test_an_item_the_bundle_cannot_rate_fails_alone(champion, monkeypatch):
    items = make_items(["a cat on a sofa", "the poison prompt", "a dog in the park"])
    bundle = bundles.bundle_for(champion)
    predict = bundle.predict

    def breaks_on_poison(examples):
        if any(e.prompt == "the poison prompt" for e in examples):
            raise RuntimeError("shape mismatch in the LSTM")
        return predict(examples)

    monkeypatch.setattr(bundle, "predict", breaks_on_poison)

    assert predict_items([i.pk for i in items]) == 2

    assert set(Prediction.objects.values_list("item_id", flat=True)) == {
        items[0].pk,
        items[2].pk,
    }
    assert failure(items[1]) == (True, "the model could not rate it: shape mismatch in the LSTM")


def test_a_bundle_that_rates_no_item_fails_the_task_and_marks_no_item(champion, monkeypatch):
    items = make_items(["a cat on a sofa", "a dog in the park"])
    bundle = bundles.bundle_for(champion)
    monkeypatch.setattr(bundle, "predict", mock.Mock(side_effect=RuntimeError("CUDA error")))

    with pytest.raises(RuntimeError, match="CUDA error"):
        predict_items([i.pk for i in items])

    assert not RatingDispatch.objects.filter(failed_at__isnull=False).exists()
    assert not Prediction.objects.exists()


def test_the_sweep_leaves_items_within_their_lease_and_failed_items(champion, settings, sent):
    settings.RATING_LEASE_SECONDS = 600
    in_flight, lost, never, poison = image_items(4)
    RatingDispatch.objects.filter(item=never).delete()  # as for an item imported before this
    Path(poison.image.path).write_bytes(b"garbage")
    predict_items([poison.pk])
    dispatched_ago([in_flight], 599)
    dispatched_ago([lost], 601)  # its message was lost: the lease has run out

    assert sweep_unpredicted() == 2

    assert sent == [[lost.pk, never.pk]]
    for item in (lost, never):
        row = RatingDispatch.objects.get(item=item)
        assert timezone.now() - row.dispatched_at < timedelta(seconds=5)  # stamped again
    assert RatingDispatch.objects.get(item=lost).attempts == 2
    # The next sweep, straight after, finds them all in flight or failed.
    assert sweep_unpredicted() == 0
    assert sent == [[lost.pk, never.pk]]


def test_an_item_queued_at_ingestion_is_not_queued_again_by_the_sweep(
    champion, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        item = make_item(prompt="a cat on a sofa")
    assert sent == [[item.pk]]
    assert item.prediction_queued is True

    assert sweep_unpredicted() == 0  # a restart's sweep: its message is still waiting
    dispatched_ago([item], 3600)
    assert sweep_unpredicted() == 1
    assert sent == [[item.pk], [item.pk]]


@pytest.mark.django_db(transaction=True)
def test_an_item_the_broker_refused_counts_as_never_queued(champion):
    with broker(CLOSED_PORT_BROKER):
        item = make_item(prompt="a cat on a sofa")
        assert item.prediction_queued is False
        assert RatingDispatch.objects.get(item=item).dispatched_at is None
        # The sweep cannot queue it either, and leaves it unstamped for the next sweep.
        assert sweep_unpredicted() == 0
        assert RatingDispatch.objects.get(item=item).dispatched_at is None
    assert sweep_unpredicted() == 1


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_rates_a_batch_around_its_poison_item(champion, settings, tmp_path):
    items = image_items(settings.INFERENCE_BATCH_SIZE)  # their messages went to memory
    poison = items[40]
    Path(poison.image.path).write_bytes(b"this is not an image")
    ids = [i.pk for i in items]
    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"

    with broker(url), worker(url) as process:
        assert send("moderation.inference.tasks.predict_items", ids)
        wait_for(
            lambda: RatingDispatch.objects.filter(failed_at__isnull=False).exists(),
            what="the batch rated around its poison item",
        )
        assert process.poll() is None, "the worker died"

    assert Prediction.objects.filter(item_id__in=ids, model_version=champion).count() == 63
    assert failure(poison) == (True, "the image could not be read: cannot identify image file")
