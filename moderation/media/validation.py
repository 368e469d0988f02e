"""Validation and normalisation of what arrives for ingestion: text, tags, labels, images.

Pure functions: no database, no storage. Each refuses bad input with a `ValidationProblem`
that names the field and says why, with the HTTP status the API answers (400, or 413 beyond a
size cap). The ingestion service runs all of them before it writes anything, so a refused item
leaves no row and no file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import unicodedata
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from rating_models.ratings import RatingError, parse_label

MAX_TAG_NAME_CHARS = 200
MAX_SHORT_TEXT = {"source": 100, "external_id": 200}
MAX_METADATA_BYTES = 64 * 1024
SPLITS = {"train": "train", "val": "train", "test": "test"}


class ValidationProblem(ValueError):
    """Input that cannot be ingested: `field` names it (None for the request as a whole)."""

    def __init__(self, field: str | None, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------- text


def _control_characters(text: str) -> list[str]:
    # Tab, newline and carriage return are ordinary in prompts; every other control character
    # (NUL above all: PostgreSQL refuses it in text) is refused rather than silently dropped.
    return [c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r"]


def text_clean(value: object, *, field: str, max_chars: int | None = None) -> str:
    """A free-text field (prompt, negative prompt): a str, within the cap, no control chars.

    The text is kept verbatim otherwise: `<script>` is stored as sent, escaping is the pages'
    job, and rewriting a prompt would change what the models rate.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationProblem(field, f"must be a string, got {type(value).__name__}")
    cap = settings.MAX_PROMPT_CHARS if max_chars is None else max_chars
    if len(value) > cap:
        raise ValidationProblem(field, f"is {len(value)} characters long; the limit is {cap}")
    bad = _control_characters(value)
    if bad:
        raise ValidationProblem(
            field, f"contains a control character (U+{ord(bad[0]):04X}); only tab and newlines"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationProblem(
            field, "contains an unpaired surrogate: not valid Unicode"
        ) from None
    return value


def short_text_clean(value: object, *, field: str) -> str:
    """An identifier-like field (source, external_id): one line, within its column's size."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # Civitai ids and corpus ids may arrive as numbers
    text = text_clean(value, field=field, max_chars=MAX_SHORT_TEXT[field]).strip()
    if any(c in text for c in "\t\n\r"):
        raise ValidationProblem(field, "must be a single line")
    return text


def _sanitised(text: str) -> str:
    """Text found inside an image: not the client's words, so cleaned instead of refused."""
    text = "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c) not in {"Cc", "Cs"})
    return text[: settings.MAX_PROMPT_CHARS].strip()


# ---------------------------------------------------------------------------------- tags


def tags_clean(value: object) -> list[list[Any]] | None:
    """Tags as `[[name, confidence], ...]`, or None when no tagger has run.

    A JSON string is accepted (multipart form fields are strings); an empty list means the
    tagger ran and found nothing, which is not the same as None.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip() or value.strip() == "null":
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValidationProblem("tags", f"is not valid JSON ({error.msg})") from None
        if value is None:
            return None
    if not isinstance(value, list | tuple):
        raise ValidationProblem("tags", "must be a list of [name, confidence] pairs or null")
    if len(value) > settings.MAX_TAGS:
        raise ValidationProblem("tags", f"has {len(value)} tags; the limit is {settings.MAX_TAGS}")
    tags = []
    for position, pair in enumerate(value):
        where = f"tags[{position}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValidationProblem("tags", f"{where} must be a [name, confidence] pair")
        name, confidence = pair
        if not isinstance(name, str) or not name.strip():
            raise ValidationProblem("tags", f"{where} name must be a non-empty string")
        if len(name) > MAX_TAG_NAME_CHARS:
            raise ValidationProblem(
                "tags", f"{where} name is longer than {MAX_TAG_NAME_CHARS} characters"
            )
        if _control_characters(name):
            raise ValidationProblem("tags", f"{where} name contains a control character")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise ValidationProblem("tags", f"{where} confidence must be a number")
        if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
            raise ValidationProblem("tags", f"{where} confidence must be between 0 and 1")
        tags.append([name.strip(), float(confidence)])
    return tags


# ------------------------------------------------------------------- labels, split, metadata


def label_clean(value: object) -> int | None:
    """An existing label's level (1-16, or 32 for Blocked), from a name, level or legacy name."""
    if value is None or value == "":
        return None
    try:
        return parse_label(value).level
    except RatingError as error:
        raise ValidationProblem("label", str(error)) from None


def split_clean(value: object) -> str | None:
    """An explicit split for imported items; the corpus's `val` is a training-side split."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in SPLITS:
        raise ValidationProblem("split", "must be one of train, val, test")
    return SPLITS[value.strip().lower()]


def split_for(uid: uuid.UUID | str) -> str:
    """The split of a new item, fixed by a hash of its id: the corpus's own rule.

    The threshold is rounded to a whole bucket: 0.2 * 100 is 20.000000000000004 in floating
    point, which would put bucket 20 in the test split and skew the fraction.
    """
    bucket = int(hashlib.sha256((str(uid) + "/split").encode()).hexdigest(), 16) % 100
    return "test" if bucket < round(settings.TEST_FRACTION * 100) else "train"


def metadata_clean(value: object) -> dict:
    """Free metadata: a JSON object of bounded size that PostgreSQL's jsonb can store."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValidationProblem("metadata", f"is not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ValidationProblem("metadata", "must be a JSON object")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValidationProblem("metadata", f"cannot be stored as JSON ({error})") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValidationProblem("metadata", f"is larger than {MAX_METADATA_BYTES} bytes", 413)
    if "\\u0000" in encoded:  # jsonb refuses NUL in strings
        raise ValidationProblem("metadata", "contains a NUL character")
    return value


# --------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class NormalisedImage:
    """An accepted image: RGB PNG bytes, its size, the digest of the bytes as sent (two
    uploads of the same file are the same item), and what its generator wrote into it."""

    png: bytes
    width: int
    height: int
    sha256: str
    prompt: str = ""
    negative_prompt: str = ""
    generation: dict[str, Any] = field(default_factory=dict)


def image_normalise(data: bytes) -> NormalisedImage:
    """Check that `data` is a real image within the caps and return it as an RGB PNG.

    The pixel cap is checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing; the full decode that follows catches truncated files.
    Animated images keep their first frame.
    """
    if not isinstance(data, bytes | bytearray):
        raise ValidationProblem("image", "must be an uploaded file")
    if len(data) == 0:
        raise ValidationProblem("image", "is not an image: the file is empty")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ValidationProblem(
            "image",
            f"is {len(data)} bytes; the limit is {settings.MAX_UPLOAD_BYTES} bytes",
            413,
        )
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        # Pillow only warns between its own cap and twice that: make every bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data)
        try:
            _check_pixels(image.width, image.height)
            try:
                image.seek(0)  # animated images: the first frame
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ValidationProblem("image", "is a decompression bomb", 413) from None
            except Exception as error:
                # Decoders raise OSError, SyntaxError, ValueError, EOFError, zlib and struct
                # errors for broken data; all of them mean the same thing to the client.
                raise ValidationProblem(
                    "image", f"is truncated or corrupt and cannot be decoded ({error})"
                ) from None
            prompt, negative, generation = generation_metadata(_text_chunks(image))
            rgb = _to_rgb(image)
        finally:
            image.close()
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return NormalisedImage(
        png=out.getvalue(),
        width=rgb.width,
        height=rgb.height,
        sha256=digest,
        prompt=prompt,
        negative_prompt=negative,
        generation=generation,
    )


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationProblem("image", "is a decompression bomb", 413) from None
    except UnidentifiedImageError:
        raise ValidationProblem("image", "is not an image Pillow can read") from None
    except Exception as error:  # a header that names a format but breaks its parser
        raise ValidationProblem("image", f"is not an image ({error})") from None


def _check_pixels(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValidationProblem("image", f"has no pixels ({width}x{height})")
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise ValidationProblem(
            "image",
            f"is {width}x{height} = {width * height} pixels; "
            f"the limit is {settings.MAX_IMAGE_PIXELS}",
            413,
        )


def _text_chunks(image: Image.Image) -> dict[str, str]:
    # PNG text chunks after the pixel data only reach `.text` once the image is loaded.
    chunks = dict(getattr(image, "text", None) or {})
    for key, value in image.info.items():
        chunks.setdefault(key, value)
    return {k: v for k, v in chunks.items() if isinstance(k, str) and isinstance(v, str)}


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode as 8-bit RGB: transparency over white, 16-bit and float rescaled."""
    with contextlib.suppress(Exception):  # a malformed EXIF block: keep the stored pixels
        image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_rescaled(np.asarray(image)), mode="L").convert("RGB")
    if (mode == "P" and "transparency" in image.info) or mode in {"RGBA", "LA", "PA", "La", "RGBa"}:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _rescaled(pixels: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit and float samples as 0-255: scaled by the range, never clipped (a
    16-bit mid-grey clipped to 255 would turn the image white)."""
    values = pixels.astype(np.float64)
    if pixels.dtype.kind in "ui" and values.min() >= 0 and values.max() <= 65535:
        scaled = values / 257.0  # the whole 16-bit range onto 0-255
    elif pixels.dtype.kind == "f" and values.min() >= 0 and values.max() <= 1:
        scaled = values * 255.0
    else:
        finite = values[np.isfinite(values)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- generation metadata

_A1111_SETTINGS = re.compile(r"^\s*Steps:\s*\d+", re.MULTILINE)
_A1111_NEGATIVE = "Negative prompt:"
_COMFY_TEXT_INPUTS = ("text", "text_g", "text_l", "prompt", "positive_prompt", "string")
_COMFY_MAX_DEPTH = 20


def generation_metadata(chunks: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    """(prompt, negative prompt, what else to keep) from an image's text chunks.

    Automatic1111 writes `parameters`; ComfyUI writes its node graph as JSON under `prompt`.
    Unreadable metadata is ignored: it never makes a valid image invalid.
    """
    if "parameters" in chunks:
        prompt, negative, parameters = _a1111(chunks["parameters"])
        generation = {"generator": "automatic1111"}
        if parameters:
            generation["parameters"] = _sanitised(parameters)
        return _sanitised(prompt), _sanitised(negative), generation
    if "prompt" in chunks:
        found = _comfyui(chunks["prompt"])
        if found is not None:
            prompt, negative = found
            return _sanitised(prompt), _sanitised(negative), {"generator": "comfyui"}
    return "", "", {}


def _a1111(text: str) -> tuple[str, str, str]:
    """`prompt\\nNegative prompt: negative\\nSteps: 20, Sampler: ...` (each part optional;
    prompt and negative prompt may span several lines)."""
    body, parameters = text, ""
    matches = list(_A1111_SETTINGS.finditer(text))
    if matches:
        last = matches[-1]
        body, parameters = text[: last.start()], text[last.start() :].strip()
    lines = body.split("\n")
    for n, line in enumerate(lines):
        if line.startswith(_A1111_NEGATIVE):
            prompt = "\n".join(lines[:n])
            negative = "\n".join([line[len(_A1111_NEGATIVE) :], *lines[n + 1 :]])
            return prompt.strip(), negative.strip(), parameters
    return body.strip(), "", parameters


def _comfyui(text: str) -> tuple[str, str] | None:
    try:
        graph = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(graph, dict):
        return None
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}

    def order(key: str) -> tuple[int, str]:
        return (int(key), key) if key.isdigit() else (1 << 62, key)

    for key in sorted(nodes, key=order):
        inputs = nodes[key].get("inputs")
        if isinstance(inputs, dict) and "positive" in inputs and "negative" in inputs:
            positive = _comfy_texts(nodes, inputs["positive"], set(), 0)
            negative = _comfy_texts(nodes, inputs["negative"], set(), 0)
            if positive or negative:
                return ", ".join(positive), ", ".join(negative)
    return None


def _comfy_texts(nodes: dict[str, dict], link: object, seen: set[str], depth: int) -> list[str]:
    """Follow a `[node id, output]` link back to the text-encoding nodes that feed it."""
    if not (isinstance(link, list) and link and depth < _COMFY_MAX_DEPTH):
        return []
    key = str(link[0])
    if key in seen or key not in nodes:
        return []
    seen.add(key)
    inputs = nodes[key].get("inputs")
    if not isinstance(inputs, dict):
        return []
    texts = []
    for name in _COMFY_TEXT_INPUTS:
        value = inputs.get(name)
        if isinstance(value, str) and value.strip():
            texts.append(value.strip())
        elif isinstance(value, list):  # a text coming from another node (a prompt loader)
            texts.extend(_comfy_texts(nodes, value, seen, depth + 1))
    if texts:
        return list(dict.fromkeys(texts))
    # Conditioning combiners, setters and the like: follow every linked input.
    for value in inputs.values():
        texts.extend(_comfy_texts(nodes, value, seen, depth + 1))
    return list(dict.fromkeys(texts))
