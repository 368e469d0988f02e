"""Hostile input through the API, as one table: every refusal is a 4xx with a JSON message
naming the culprit field (null for the request as a whole) and writes nothing, neither a row
(item, label, review state) nor a file; odd but valid images are accepted and stored as RGB
PNGs; markup is stored verbatim (the pages escape it, see tests/moderation/test_escaping.py).

Scattered cases of test_api.py overlap some rows; this table is the proof cited for the whole
list, and it also counts labels, review states and files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from PIL import Image
from rest_framework.test import APIClient

from moderation.media.models import MediaItem
from moderation.review.models import Label, ReviewState
from tests.moderation.factories import image_bytes, jpeg_bytes, png_bytes
from tests.moderation.media.test_validation import png_claiming_size

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/items/"
RATE = "/api/v1/rate/"
SCRIPT = "<script>window.__pwned = 1</script>"
ONERROR = '<img src=x onerror="window.__pwned=2">'


@dataclass(frozen=True)
class Hostile:
    """One request: `multipart` fields (bytes become the image file), a `json` value, or a
    `raw` body with its content type; `caps` lower settings for the request."""

    status: int
    field: str | None
    multipart: dict[str, Any] | None = None
    json: Any = None
    raw: bytes | None = None
    content_type: str = ""
    path: str = ITEMS
    caps: dict[str, int] = field(default_factory=dict)

    def send(self, api: APIClient):
        if self.multipart is not None:
            data = {
                k: (io.BytesIO(v) if isinstance(v, bytes) else v) for k, v in self.multipart.items()
            }
            for value in data.values():
                if isinstance(value, io.BytesIO):
                    value.name = "upload.png"
            return api.post(self.path, data, format="multipart")
        if self.raw is not None:
            return api.post(self.path, self.raw, content_type=self.content_type)
        return api.post(self.path, self.json, format="json")


def image(data: bytes, **fields: Any) -> dict[str, Any]:
    return {"image": data, **fields}


def rows_and_files() -> tuple[int, int, int, set[Path]]:
    files = {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}
    return MediaItem.objects.count(), Label.objects.count(), ReviewState.objects.count(), files


MEGABYTE_PROMPT = "a" * 1_000_000
INVALID_UTF8 = b'{"prompt": "a \xff\xfe cat"}'

REFUSED = {
    # images that are not (whole) images
    "text as image": Hostile(400, "image", multipart=image(b"hello, I am text")),
    "pdf as image": Hostile(400, "image", multipart=image(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n")),
    "zero bytes": Hostile(400, "image", multipart=image(b"")),
    "truncated jpeg": Hostile(400, "image", multipart=image(jpeg_bytes(size=(256, 256))[:-600])),
    "truncated png": Hostile(
        400, "image", multipart=image(png_bytes(size=(256, 256), compress_level=0)[:-5000])
    ),
    "decompression bomb": Hostile(
        413, "image", multipart=image(png_claiming_size(100_000, 100_000))
    ),
    "over the pixel cap": Hostile(413, "image", multipart=image(png_claiming_size(10_000, 5_000))),
    "over the image byte cap": Hostile(
        413, "image", multipart=image(png_bytes(size=(64, 64))), caps={"MAX_UPLOAD_BYTES": 50}
    ),
    # text
    "1 MB prompt (json)": Hostile(400, "prompt", json={"prompt": MEGABYTE_PROMPT}),
    "1 MB prompt (multipart)": Hostile(400, "prompt", multipart={"prompt": MEGABYTE_PROMPT}),
    "1 MB prompt (rate, queued)": Hostile(
        400, "prompt", json={"prompt": MEGABYTE_PROMPT, "queue": True}, path=RATE
    ),
    "NUL in prompt": Hostile(400, "prompt", json={"prompt": "a\x00cat"}),
    "NUL in prompt (rate, queued)": Hostile(
        400, "prompt", json={"prompt": "a\x00cat", "queue": True}, path=RATE
    ),
    "escape in negative prompt": Hostile(
        400, "negative_prompt", multipart={"prompt": "a cat", "negative_prompt": "\x1b[2J"}
    ),
    "bell in prompt with an image": Hostile(
        400, "prompt", multipart=image(png_bytes(), prompt="a\x07cat")
    ),
    "C1 control in a tag": Hostile(400, "tags", json={"prompt": "a", "tags": [["c\x85t", 0.5]]}),
    "NUL in a tag (rate, queued)": Hostile(
        400, "tags", json={"prompt": "a", "tags": [["c\x00t", 0.5]], "queue": True}, path=RATE
    ),
    "NUL in metadata": Hostile(400, "metadata", json={"prompt": "a", "metadata": {"k": "\x00"}}),
    "invalid utf-8 json": Hostile(
        400, None, raw=INVALID_UTF8, content_type="application/json; charset=utf-8"
    ),
    "invalid utf-8 json (rate)": Hostile(
        400, None, raw=INVALID_UTF8, content_type="application/json", path=RATE
    ),
    # content types
    "text/plain": Hostile(415, None, raw=b"prompt=a cat", content_type="text/plain"),
    "form-urlencoded": Hostile(
        415, None, raw=b"prompt=a+cat", content_type="application/x-www-form-urlencoded"
    ),
    "xml": Hostile(415, None, raw=b"<prompt>a</prompt>", content_type="application/xml"),
    "raw png body": Hostile(415, None, raw=png_bytes(), content_type="image/png"),
    "multipart without boundary": Hostile(
        400, None, raw=b"prompt=a", content_type="multipart/form-data"
    ),
    "rate as multipart": Hostile(415, None, multipart={"prompt": "a cat"}, path=RATE),
    # sizes
    "oversized json body": Hostile(
        413, None, json={"prompt": "a" * 5000}, caps={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}
    ),
    "oversized multipart body": Hostile(
        413,
        None,
        multipart=image(png_bytes(size=(64, 64)), prompt="a" * 5000),
        caps={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000},
    ),
    "oversized rate body": Hostile(
        413,
        None,
        json={"prompt": "a" * 5000, "queue": True},
        path=RATE,
        caps={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000},
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_hostile_input_is_a_4xx_naming_the_field_and_writes_nothing(
    api, settings, case: Hostile
) -> None:
    for name, value in case.caps.items():
        setattr(settings, name, value)
    before = rows_and_files()
    response = case.send(api)
    assert response.status_code == case.status, response.content
    assert response["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field"}
    assert isinstance(body["error"], str) and body["error"]
    assert body["field"] == case.field, body
    if case.field is not None:
        assert body["error"] != "invalid request"
    assert rows_and_files() == before


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def palette_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).quantize(4).save(out, format="PNG")
    return out.getvalue()


def sixteen_bit_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(out, format="PNG")
    return out.getvalue()


ACCEPTED = {
    "animated gif": (animated_gif(), (255, 0, 0)),
    "cmyk jpeg": (image_bytes("JPEG", mode="CMYK", colour=(255, 0, 0, 0), quality=95), None),
    "palette png": (palette_png(), (0, 128, 255)),
    "16-bit png": (sixteen_bit_png(), None),
}


@pytest.mark.parametrize(("data", "colour"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_odd_images_are_accepted_and_stored_as_rgb_png(api, data: bytes, colour) -> None:
    response = api.post(
        ITEMS,
        {"image": io.BytesIO(data), "prompt": f"{SCRIPT} {ONERROR}"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    item = MediaItem.objects.get(uid=response.json()["uid"])
    with Image.open(item.image.path) as stored:
        assert (stored.format, stored.mode) == ("PNG", "RGB")
        assert (item.width, item.height) == stored.size
        if colour is not None:
            assert stored.getpixel((4, 4)) == colour


def test_markup_in_prompts_and_tags_is_stored_verbatim(api) -> None:
    tags = [[SCRIPT, 0.5], [ONERROR, 0.25]]
    sent = {"prompt": SCRIPT, "negative_prompt": ONERROR, "tags": tags}
    response = api.post(ITEMS, sent, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["prompt"], body["negative_prompt"], body["tags"]) == (SCRIPT, ONERROR, tags)
    item = MediaItem.objects.get(uid=body["uid"])
    assert (item.prompt, item.negative_prompt, item.tags) == (SCRIPT, ONERROR, tags)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=true", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: a digit to str.isdigit, not to int()
        ("offset=abc", "offset"),
        ("offset=-5", "offset"),
        ("state=nope", "state"),
    ],
)
def test_malformed_list_parameters_are_400_not_silently_defaulted(api, query, field) -> None:
    # Found by schemathesis: DRF's pagination fell back to its default on a malformed value.
    response = api.get(f"{ITEMS}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_well_formed_list_parameters_are_used(api) -> None:
    for n in range(3):
        api.post(ITEMS, {"prompt": f"item {n}"}, format="json")
    body = api.get(f"{ITEMS}?limit=1&offset=1").json()
    assert (body["count"], len(body["results"])) == (3, 1)
    assert body["results"][0]["prompt"] == "item 1"
