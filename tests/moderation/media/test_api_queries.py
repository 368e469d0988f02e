"""What ingestion costs the database: the token is looked up once, a new item not read back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from moderation.media import api_auth
from moderation.media.models import ApiClient

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/items/"


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The reads and writes run, transaction control (BEGIN, SAVEPOINT, ...) left out."""
    verbs = [q["sql"].split()[0] for q in queries]
    return [v for v in verbs if v in {"SELECT", "INSERT", "UPDATE", "DELETE"}]


def test_a_token_is_looked_up_once_while_it_is_trusted(api, settings) -> None:
    settings.API_TOKEN_CACHE_SECONDS = 60
    assert api.get(ITEMS).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api.get(ITEMS).status_code == 200
    assert not [q for q in queries if "media_apiclient" in q["sql"]]


def test_a_deactivated_client_is_refused_once_its_trusted_time_is_up(
    acme, api, settings, monkeypatch
) -> None:
    settings.API_TOKEN_CACHE_SECONDS = 60
    assert api.get(ITEMS).status_code == 200
    ApiClient.objects.filter(pk=acme[0].pk).update(active=False)
    assert api.get(ITEMS).status_code == 200  # trusted for up to a minute
    later = api_auth.monotonic() + 61
    monkeypatch.setattr(api_auth, "monotonic", lambda: later)
    assert api.get(ITEMS).status_code == 401


def test_with_no_trusted_time_every_request_looks_the_token_up(acme, api, settings) -> None:
    settings.API_TOKEN_CACHE_SECONDS = 0
    assert api.get(ITEMS).status_code == 200
    ApiClient.objects.filter(pk=acme[0].pk).update(active=False)
    assert api.get(ITEMS).status_code == 401


def test_a_new_item_is_written_without_being_read_back(api, settings) -> None:
    settings.API_TOKEN_CACHE_SECONDS = 60
    api.get(ITEMS)  # the token is trusted from here on
    with CaptureQueriesContext(connection) as queries:
        response = api.post(ITEMS, {"prompt": "a red car", "external_id": "c1"}, format="json")
    assert response.status_code == 201, response.content
    # The look-up that makes the same external id the same item, then the item, its review
    # state and its rating's dispatch stamp (the sweep's lease).
    assert statements(queries) == ["SELECT", "INSERT", "INSERT", "INSERT"], [
        q["sql"] for q in queries
    ]


def test_the_answer_to_a_new_item_is_the_item_as_stored(api) -> None:
    body = {"prompt": "a red car", "tags": [["car", 0.9]], "metadata": {"seed": 7}}
    created = api.post(ITEMS, body, format="json").json()
    created.pop("queued")
    assert api.get(f"{ITEMS}{created['uid']}/").json() == created


def test_an_item_sent_again_is_answered_as_stored(api) -> None:
    body = {"prompt": "a red car", "external_id": "c1"}
    first = api.post(ITEMS, body, format="json").json()
    again = api.post(ITEMS, body, format="json")
    assert again.status_code == 200
    assert again.json() == {**first, "queued": None}
