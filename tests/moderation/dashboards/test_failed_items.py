"""The health page lists the items whose rating failed, and an admin retries one from there."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from moderation.audit.models import AuditEvent
from moderation.inference.models import Prediction, RatingDispatch
from moderation.inference.tasks import predict_items
from moderation.media.models import MediaItem
from tests.moderation.factories import make_item, png_bytes
from tests.moderation.inference.conftest import bundle_dir, champion  # noqa: F401

pytestmark = pytest.mark.django_db

HEALTH = "/dashboards/health/"


def retry_url(item: MediaItem) -> str:
    return f"/dashboards/health/failed/{item.uid}/retry/"


@pytest.fixture
def poison(champion) -> MediaItem:  # noqa: F811
    """An item whose stored image was overwritten with garbage, and whose rating failed."""
    item = make_item(prompt="<script>alert('x')</script> a cat", image=png_bytes())
    Path(item.image.path).write_bytes(b"this is not an image")
    assert predict_items([item.pk]) == 0
    return item


@pytest.fixture
def sent(monkeypatch) -> list[list[int]]:
    batches: list[list[int]] = []
    monkeypatch.setattr(predict_items, "delay", lambda ids, **kwargs: batches.append(ids))
    return batches


def test_the_health_page_lists_a_failed_item_with_its_reason(admin_client, poison):
    page = admin_client.get(HEALTH).content.decode()

    assert "the image could not be read: cannot identify image file" in page
    assert f'href="/review/items/{poison.uid}/"' in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; a cat" in page
    assert "<script>alert" not in page
    assert f'action="{retry_url(poison)}"' in page
    assert "No item's rating has failed." not in page


def test_the_health_page_says_when_no_rating_failed(admin_client, db):
    assert "No item's rating has failed." in admin_client.get(HEALTH).content.decode()


def test_a_retry_clears_the_failure_and_queues_the_item(
    admin_client, poison, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(retry_url(poison))

    assert response.status_code == 302 and response.url == HEALTH
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Item {poison.uid} is queued for rating again."
    ]
    assert sent == [[poison.pk]]
    event = AuditEvent.objects.get(action="rating_retry", item=poison)
    assert event.actor.username == "carol" and event.new == "queued"
    assert event.old.startswith("the image could not be read")
    row = RatingDispatch.objects.get(item=poison)
    assert row.failed_at is None and row.failure == ""
    assert timezone.now() - row.dispatched_at < timedelta(seconds=5)
    assert "No item's rating has failed." in admin_client.get(HEALTH).content.decode()

    Path(poison.image.path).write_bytes(png_bytes())  # the file was restored
    assert predict_items([poison.pk]) == 1
    assert Prediction.objects.filter(item=poison).exists()
    assert not RatingDispatch.objects.filter(item=poison).exists()


def test_a_retried_item_that_is_still_unreadable_fails_again_with_its_reason(
    admin_client, poison, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(retry_url(poison))

    assert predict_items(sent[0]) == 0

    row = RatingDispatch.objects.get(item=poison)
    assert row.failed_at is not None
    assert row.failure == "the image could not be read: cannot identify image file"
    assert row.attempts == 2  # stored at ingestion, then the retry
    assert "cannot identify image file" in admin_client.get(HEALTH).content.decode()


def test_retrying_an_item_that_has_not_failed_queues_nothing(admin_client, champion, sent):  # noqa: F811
    item = make_item(prompt="a cat on a sofa")

    response = admin_client.post(retry_url(item))

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Item {item.uid} had no failed rating to retry."
    ]
    assert sent == []


def test_retrying_an_unknown_item_is_not_found(admin_client, db):
    assert admin_client.post(f"/dashboards/health/failed/{uuid.uuid4()}/retry/").status_code == 404


def test_a_retry_is_a_post(admin_client, poison):
    assert admin_client.get(retry_url(poison)).status_code == 405
    assert RatingDispatch.objects.get(item=poison).failed_at is not None


def test_a_moderator_cannot_retry(client, alice, poison, sent):
    client.force_login(alice)

    assert client.post(retry_url(poison)).status_code == 403
    assert client.get(HEALTH).status_code == 403
    assert RatingDispatch.objects.get(item=poison).failed_at is not None
    assert sent == []


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, poison):
    response = client.post(retry_url(poison))

    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")
    assert RatingDispatch.objects.get(item=poison).failed_at is not None
