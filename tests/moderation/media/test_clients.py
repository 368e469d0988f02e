"""API clients see their own items (issue 14): listing, reading and deduplication are per
client, a client the admin lets see all reads every item, and each client is throttled."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from moderation.media.models import ApiClient, MediaItem
from tests.moderation.factories import make_item, png_bytes

pytestmark = pytest.mark.django_db


def api_for(name: str, **fields) -> tuple[APIClient, ApiClient]:
    client, token = ApiClient.issue(name)
    if fields:
        ApiClient.objects.filter(pk=client.pk).update(**fields)
        client.refresh_from_db()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api, client


def send(api: APIClient, **fields):
    return api.post("/api/v1/items/", fields, format="json")


def test_a_client_lists_and_reads_only_its_own_items():
    acme, _ = api_for("acme")
    globex, _ = api_for("globex")
    mine = send(acme, prompt="acme's secret prompt").json()["uid"]
    theirs = send(globex, prompt="globex's secret prompt").json()["uid"]
    make_item(prompt="an imported corpus prompt")

    listed = acme.get("/api/v1/items/").json()
    assert [item["uid"] for item in listed["results"]] == [mine]
    assert acme.get(f"/api/v1/items/{mine}/").status_code == 200
    other = acme.get(f"/api/v1/items/{theirs}/")
    assert other.status_code == 404 and "globex" not in other.content.decode()


def test_an_admin_may_let_one_client_see_every_item():
    acme, _ = api_for("acme")
    auditor, _ = api_for("auditor", sees_all=True)
    uid = send(acme, prompt="acme's prompt").json()["uid"]
    make_item(prompt="an imported corpus prompt")
    assert auditor.get(f"/api/v1/items/{uid}/").status_code == 200
    assert auditor.get("/api/v1/items/").json()["count"] == 2


def test_the_same_image_from_another_client_is_that_clients_own_item():
    acme, _ = api_for("acme")
    globex, _ = api_for("globex")
    image = png_bytes()

    def upload(api):
        return api.post(
            "/api/v1/items/",
            {"image": SimpleUploadedFile("a.png", image, "image/png"), "prompt": "a cat"},
            format="multipart",
        )

    first, again, other = upload(acme), upload(acme), upload(globex)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["uid"] == first.json()["uid"]
    assert other.json()["uid"] != first.json()["uid"]
    owners = dict(MediaItem.objects.values_list("uid", "client__name"))
    assert {str(k): v for k, v in owners.items()} == {
        first.json()["uid"]: "acme",
        other.json()["uid"]: "globex",
    }


def test_the_same_external_id_from_another_client_is_another_item():
    acme, _ = api_for("acme")
    globex, _ = api_for("globex")
    a = send(acme, prompt="one", source="shared", external_id="42")
    b = send(globex, prompt="two", source="shared", external_id="42")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["uid"] != b.json()["uid"]


def test_a_client_over_its_rate_gets_429_with_retry_after(monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    cache.clear()
    acme, _ = api_for("acme")
    globex, _ = api_for("globex")
    answers = [acme.get("/api/v1/items/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = acme.get("/api/v1/items/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["error"].startswith("Request was throttled")
    assert globex.get("/api/v1/items/").status_code == 200  # per client
    cache.clear()
