"""Outages of what the product depends on: the broker and the database.

With the broker down an item is still stored (its prediction pending, found later by the
sweep); with the database down the API answers 503 with Retry-After and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import OperationalError
from rest_framework.test import APIClient

from moderation.inference.tasks import sweep_unpredicted
from moderation.media.models import ApiClient, MediaItem
from tests.moderation.factories import png_bytes
from tests.moderation.inference.conftest import bundle_dir, champion  # noqa: F401
from tests.moderation.worker import broker

ITEMS = "/api/v1/items/"
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


def api_client() -> APIClient:
    _, token = ApiClient.issue("acme")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def written() -> tuple[int, set[Path]]:
    files = {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}
    return MediaItem.objects.count(), files


@pytest.mark.django_db(transaction=True)
def test_an_item_is_stored_when_the_broker_is_down(champion) -> None:  # noqa: F811
    api = api_client()
    with broker(CLOSED_PORT_BROKER):
        response = api.post(ITEMS, {"prompt": "a cat on a sofa"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["queued"] is False
    assert body["prediction_pending"] is True
    item = MediaItem.objects.get(uid=body["uid"])
    assert item.prompt == "a cat on a sofa"
    # The broker is back (tests queue to memory): the sweep queues the item again.
    assert sweep_unpredicted() == 1


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_503_and_writes_nothing_when_the_database_is_down() -> None:
    api = api_client()
    image = png_bytes(size=(40, 30))
    before = written()

    def unreachable(self: BaseDatabaseWrapper) -> None:
        raise OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", unreachable):
        response = api.post(ITEMS, {"image": SimpleUploadedFile("a.png", image), "prompt": "a cat"})
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "30"
    assert response["Content-Type"].split(";")[0] == "application/json"
    assert response.json() == {"error": "the database is unavailable; retry later", "field": None}
    assert written() == before

    # After the outage the client retries: the same image is one item.
    first = api.post(ITEMS, {"image": SimpleUploadedFile("a.png", image), "prompt": "a cat"})
    again = api.post(ITEMS, {"image": SimpleUploadedFile("a.png", image), "prompt": "a cat"})
    assert (first.status_code, again.status_code) == (201, 200), (first.content, again.content)
    assert first.json()["uid"] == again.json()["uid"]
    assert MediaItem.objects.count() == before[0] + 1


def test_a_page_answers_the_sites_503_when_the_database_is_down(client, alice) -> None:
    client.force_login(alice)

    def unreachable(self: BaseDatabaseWrapper) -> None:
        raise OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", unreachable):
        response = client.get("/review/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "The database is not answering just now" in page
    assert 'class="topbar"' in page and 'href="/review/"' in page  # the site's layout, a way back
    assert "Try again in 30 seconds" in " ".join(page.split())
