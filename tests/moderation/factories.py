"""Builders for moderation tests: image bytes made with Pillow, items made through the
ingestion service (`make_item`), so tests exercise the same path as the API."""

from __future__ import annotations

import io
import itertools
from typing import Any

from PIL import Image

from moderation.media.models import MediaItem
from moderation.media.services import item_create

_colours = itertools.count(1)


def image_bytes(
    format: str = "PNG",
    *,
    size: tuple[int, int] = (32, 24),
    mode: str = "RGB",
    colour: Any = None,
    **save: Any,
) -> bytes:
    """A plain image in any Pillow mode and format. Without a colour each call gets a new
    one, so two calls never make the same bytes (the same bytes are the same item)."""
    if colour is None:
        n = next(_colours)
        colour = (n * 37 % 256, n * 91 % 256, n * 53 % 256)
        if mode in {"L", "P"}:
            colour = colour[0]
        elif mode in {"RGBA", "CMYK"}:
            colour = (*colour, 255)
    image = Image.new(mode, size, colour)
    out = io.BytesIO()
    image.save(out, format=format, **save)
    return out.getvalue()


def png_bytes(**kwargs: Any) -> bytes:
    return image_bytes("PNG", **kwargs)


def jpeg_bytes(**kwargs: Any) -> bytes:
    return image_bytes("JPEG", **kwargs)


def make_item(**fields: Any) -> MediaItem:
    """An item created by `item_create`; a prompt-only item unless `image=` is given."""
    fields.setdefault("prompt", "a cat on a sofa")
    item, _ = item_create(**fields)
    return item
