from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from moderation.inference.models import ModelVersion
from moderation.inference.services import predictions_create
from moderation.media.models import ApiClient, MediaItem
from moderation.review.decisions import label_create
from tests.moderation.factories import jpeg_bytes, make_item, png_bytes
from tests.moderation.media.test_validation import png_claiming_size

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/items/"
RATE = "/api/v1/rate/"


def upload(data: bytes | None = None, name: str = "image.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes() if data is None else data)


def written() -> tuple[int, set[Path]]:
    files = {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}
    return MediaItem.objects.count(), files


def assert_error(response, status: int, field: str | None) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0].endswith("json")
    body = response.json()
    assert set(body) == {"error", "field"}
    assert body["error"]
    assert body["field"] == field


# ------------------------------------------------------------------------------------- auth


def test_a_request_without_a_token_is_refused_with_401() -> None:
    response = APIClient().get(ITEMS)
    assert_error(response, 401, None)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Bearer", "Bearer a b", "Basic Zm9v"])
def test_a_wrong_token_is_refused_with_401(acme, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get(ITEMS), 401, None)


def test_an_inactive_client_is_refused_with_401(acme, api) -> None:
    ApiClient.objects.filter(pk=acme[0].pk).update(active=False)
    assert_error(api.get(ITEMS), 401, None)


def test_an_unknown_api_path_answers_json_404(api) -> None:
    assert_error(api.get("/api/v1/nothing-here/"), 404, None)


# ----------------------------------------------------------------------------------- create


def test_an_image_is_created_from_a_multipart_upload(api) -> None:
    response = api.post(
        ITEMS,
        {
            "image": upload(png_bytes(size=(40, 30))),
            "prompt": "a cat on a sofa",
            "tags": '[["cat", 0.93], ["sofa", 0.71]]',
            "external_id": "img-1",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"]) == (40, 30)
    assert body["tags"] == [["cat", 0.93], ["sofa", 0.71]]
    assert body["source"] == "acme"
    assert body["state"] == "queued"
    assert body["prediction_pending"] is True
    assert body["predictions"] == [] and body["labels"] == []
    assert body["image_url"].endswith(".png")
    assert MediaItem.objects.get(uid=body["uid"]).split in {"train", "test"}


def test_a_prompt_only_item_is_created_from_json(api) -> None:
    response = api.post(
        ITEMS,
        {"prompt": "a red car", "negative_prompt": "blurry", "tags": None},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["prompt"], body["negative_prompt"], body["tags"]) == ("a red car", "blurry", None)
    assert body["image_url"] is None


@pytest.mark.parametrize(
    "payload",
    [{}, {"prompt": "   "}, {"negative_prompt": "nude"}, {"tags": []}, {"source": "feed"}],
    ids=["nothing", "blank-prompt", "negative-only", "no-tags", "source-only"],
)
def test_an_item_with_nothing_to_rate_is_refused(api, payload: dict) -> None:
    response = api.post(ITEMS, payload, format="json")
    assert_error(response, 400, None)
    assert "nothing to rate" in response.json()["error"]
    assert not MediaItem.objects.exists()


def test_tags_alone_are_something_to_rate(api) -> None:
    response = api.post(ITEMS, {"tags": [["cat", 0.9]]}, format="json")
    assert response.status_code == 201, response.content


def test_the_same_image_twice_returns_the_same_item(api) -> None:
    data = jpeg_bytes()
    first = api.post(ITEMS, {"image": upload(data, "a.jpg")}, format="multipart")
    again = api.post(ITEMS, {"image": upload(data, "b.jpg")}, format="multipart")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["uid"] == again.json()["uid"]
    assert again.json()["queued"] is None
    assert MediaItem.objects.count() == 1


def test_markup_in_a_prompt_is_stored_verbatim(api) -> None:
    script = "<script>alert(1)</script>"
    response = api.post(ITEMS, {"prompt": script, "tags": [[script, 0.5]]}, format="json")
    assert response.json()["prompt"] == script
    assert MediaItem.objects.get().tags == [[script, 0.5]]


def test_invalid_utf8_in_a_multipart_field_is_replaced_not_a_500(api) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="prompt"\r\n\r\n'
        b"a \xff\xfe cat\r\n"
        b"--XyZ--\r\n"
    )
    response = api.post(ITEMS, body, content_type="multipart/form-data; boundary=XyZ")
    assert response.status_code == 201, response.content
    assert response.json()["prompt"] == "a \ufffd\ufffd cat"


@pytest.mark.django_db(transaction=True)
def test_a_created_item_has_its_prediction_queued(api) -> None:
    response = api.post(ITEMS, {"prompt": "a cat"}, format="json")
    assert response.json()["queued"] is True


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_is_reported_and_the_item_kept(api) -> None:
    with mock.patch(
        "moderation.inference.tasks.predict_items.delay", side_effect=OSError("no broker")
    ):
        response = api.post(ITEMS, {"prompt": "a cat"}, format="json")
    assert response.status_code == 201
    assert response.json()["queued"] is False
    assert MediaItem.objects.count() == 1


# ------------------------------------------------------------------------------- bad input


def test_an_image_over_the_byte_cap_is_413_naming_the_image(api, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 50
    before = written()
    response = api.post(ITEMS, {"image": upload(png_bytes(size=(64, 64)))}, format="multipart")
    assert_error(response, 413, "image")
    assert written() == before


def test_a_body_over_the_request_cap_is_413(api, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = written()
    response = api.post(ITEMS, {"prompt": "a" * 5000}, format="json")
    assert_error(response, 413, None)
    assert written() == before


def test_a_decompression_bomb_is_413(api) -> None:
    before = written()
    bomb = upload(png_claiming_size(100_000, 100_000))
    assert_error(api.post(ITEMS, {"image": bomb}, format="multipart"), 413, "image")
    assert written() == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"image": b"this is not an image"}, "image"),
        ({"image": b""}, "image"),
        ({"image": jpeg_bytes(size=(128, 128))[:-400]}, "image"),
        ({"prompt": "a" * 10_001}, "prompt"),
        ({"prompt": "a\x00cat"}, "prompt"),
        ({"negative_prompt": "\x1b[2J"}, "negative_prompt"),
        ({"tags": "[[cat, 0.9]]"}, "tags"),
        ({"tags": '[["cat", 7]]'}, "tags"),
        ({"metadata": "[1, 2]"}, "metadata"),
    ],
)
def test_bad_multipart_input_is_400_naming_the_field(api, fields: dict, field: str) -> None:
    before = written()
    data = {"prompt": "a cat", **fields}
    if isinstance(data.get("image"), bytes):
        data["image"] = upload(data["image"])
    assert_error(api.post(ITEMS, data, format="multipart"), 400, field)
    assert written() == before


def test_an_image_field_that_is_not_a_file_is_400(api) -> None:
    response = api.post(ITEMS, {"image": "http://example.com/a.png"}, format="json")
    assert_error(response, 400, "image")


def test_malformed_json_is_400(api) -> None:
    before = written()
    response = api.post(ITEMS, '{"prompt": "a cat",', content_type="application/json")
    assert_error(response, 400, None)
    assert written() == before


def test_a_json_body_that_is_not_an_object_is_400(api) -> None:
    assert_error(api.post(ITEMS, [1, 2], format="json"), 400, None)


def test_a_wrong_json_type_is_400_naming_the_field(api) -> None:
    assert_error(api.post(ITEMS, {"prompt": ["a", "b"]}, format="json"), 400, "prompt")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_an_unsupported_content_type_is_415(api, content_type: str) -> None:
    before = written()
    response = api.post(ITEMS, "prompt=a cat", content_type=content_type)
    assert_error(response, 415, None)
    assert written() == before


# ------------------------------------------------------------------------------------- read


def test_an_item_is_read_with_its_predictions_and_labels(api, acme, champion: ModelVersion) -> None:
    alice = User.objects.create_user("alice")
    item = make_item(prompt="nude woman on a bed", tags=[["nude", 0.9]], client=acme[0])
    predictions_create(item_ids=[item.pk])
    first = label_create(item=item, level=4, moderator=alice)
    label_create(item=item, level=8, moderator=alice)

    body = api.get(f"{ITEMS}{item.uid}/").json()

    assert body["prediction_pending"] is False
    [prediction] = body["predictions"]
    assert prediction["model_version"] == champion.version
    assert set(prediction["experts"]) == {"tag_rules", "lstm", "lstm_tags"}
    for expert in prediction["experts"].values():
        assert set(expert) == {"rating", "level", "probs"}
    assert set(prediction["mlp_probs"]) == {"PG", "PG13", "R", "X", "XXX"}
    assert sum(prediction["mlp_probs"].values()) == pytest.approx(1.0, abs=1e-3)
    # The experts whose features the MLP read, as the prediction row stores them: the
    # champion's MLP was trained with all three, so it read every one that spoke.
    assert prediction["mlp_experts"] == item.predictions.get().mlp_experts
    spoke = [name for name, out in prediction["experts"].items() if out["rating"] is not None]
    assert prediction["mlp_experts"] and sorted(prediction["mlp_experts"]) == sorted(spoke)
    assert prediction["rating"] in {"PG", "PG13", "R", "X", "XXX"}
    assert prediction["mlp"]["level"] in {1, 2, 4, 8, 16}
    assert [(x["rating"], x["moderator"]) for x in body["labels"]] == [
        ("R", "alice"),
        ("X", "alice"),
    ]
    assert body["labels"][1]["supersedes"] == first.pk
    assert body["current_label"]["level"] == 8
    assert body["state"] == "done"


def test_an_unknown_item_is_a_json_404(api) -> None:
    assert_error(api.get(f"{ITEMS}00000000-0000-0000-0000-000000000000/"), 404, None)


def test_items_are_listed_by_review_state(api, acme) -> None:
    queued = [make_item(client=acme[0]), make_item(client=acme[0])]
    done = make_item(label="R", client=acme[0])
    assert api.get(ITEMS, {"state": "queued"}).json()["count"] == 2
    listed = api.get(ITEMS, {"state": "done"}).json()
    assert [i["uid"] for i in listed["results"]] == [str(done.uid)]
    assert api.get(ITEMS).json()["count"] == 3
    page = api.get(ITEMS, {"limit": 1, "offset": 1}).json()
    assert [i["uid"] for i in page["results"]] == [str(queued[1].uid)]
    assert page["next"] is not None


def test_an_unknown_state_is_400(api) -> None:
    assert_error(api.get(ITEMS, {"state": "lost"}), 400, "state")


# ------------------------------------------------------------------------------------- rate


def test_rating_without_a_champion_is_503(api) -> None:
    response = api.post(RATE, {"prompt": "a cat"}, format="json")
    assert_error(response, 503, None)
    assert "champion" in response.json()["error"]


def test_a_prompt_is_rated_within_the_request_and_nothing_is_stored(
    api, champion: ModelVersion
) -> None:
    response = api.post(RATE, {"prompt": "nude woman on a bed"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == champion.version
    assert body["rating"] in {"PG", "PG13", "R", "X", "XXX"}
    assert body["level"] in {1, 2, 4, 8, 16}
    assert set(body["experts"]) == {"tag_rules", "lstm", "lstm_tags"}
    assert body["experts"]["lstm_tags"]["rating"] is None  # no tags at generation time
    assert "lstm_tags" not in body["mlp_experts"] and "lstm" in body["mlp_experts"]
    assert set(body["mlp_probs"]) == {"PG", "PG13", "R", "X", "XXX"}
    assert "uid" not in body
    assert MediaItem.objects.count() == 0


def test_a_rated_prompt_is_queued_for_review_when_asked(api, champion: ModelVersion) -> None:
    response = api.post(RATE, {"prompt": "a cat", "queue": True}, format="json")
    item = MediaItem.objects.get()
    assert response.json()["uid"] == str(item.uid)
    assert (item.prompt, item.source, item.review.state) == ("a cat", "acme", "queued")


def test_a_bad_rate_request_is_400_naming_the_field(api) -> None:
    assert_error(api.post(RATE, {"prompt": "a\x00"}, format="json"), 400, "prompt")
    assert_error(api.post(RATE, {}, format="json"), 400, "prompt")
    assert_error(api.post(RATE, {"prompt": "a", "tags": "x"}, format="json"), 400, "tags")


# ----------------------------------------------------------------------------------- schema


def test_the_schema_is_a_valid_openapi_document_listing_the_paths(api) -> None:
    response = api.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert {"/api/v1/items/", "/api/v1/items/{uid}/", "/api/v1/rate/"} <= set(schema["paths"])
    create = schema["paths"]["/api/v1/items/"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(create["requestBody"]["content"])
    assert {"201", "400", "401", "413", "415"} <= set(create["responses"])
    assert "503" in schema["paths"]["/api/v1/rate/"]["post"]["responses"]
    assert "clientToken" in schema["components"]["securitySchemes"]


def test_the_schema_refuses_a_wrong_token_with_json() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer wrong")
    assert_error(client.get("/api/v1/schema/"), 401, None)


def test_the_schema_needs_a_client_token(db) -> None:
    response = APIClient().get("/api/v1/schema/")
    assert response.status_code == 401
    assert "error" in response.json()
