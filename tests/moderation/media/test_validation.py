from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from moderation.media.validation import (
    ValidationProblem,
    image_normalise,
    label_clean,
    metadata_clean,
    split_clean,
    tags_clean,
    text_clean,
)
from tests.moderation.factories import image_bytes, jpeg_bytes, png_bytes


def problem(call, *args, **kwargs) -> ValidationProblem:
    with pytest.raises(ValidationProblem) as caught:
        call(*args, **kwargs)
    return caught.value


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(image_normalise(data).png))


def png_claiming_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header (with a valid checksum) claims another size."""
    data = bytearray(png_bytes(size=(1, 1)))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, I am text",
        b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n",
        b"\x89PNG\r\n\x1a\n",  # a signature and nothing else
        b"\x00" * 1024,
    ],
    ids=["zero bytes", "text", "pdf", "png signature only", "nul bytes"],
)
def test_non_images_are_refused_as_not_an_image(data: bytes) -> None:
    refused = problem(image_normalise, data)
    assert (refused.field, refused.status) == ("image", 400)
    assert "not an image" in refused.message


@pytest.mark.parametrize(
    "data",
    [
        jpeg_bytes(size=(256, 256))[:-600],
        png_bytes(size=(256, 256), compress_level=0)[:-5000],
    ],
    ids=["jpeg", "png"],
)
def test_truncated_images_are_refused_as_truncated(data: bytes) -> None:
    refused = problem(image_normalise, data)
    assert (refused.field, refused.status) == ("image", 400)
    assert "truncated" in refused.message


def test_a_decompression_bomb_is_refused_before_any_pixel_is_decoded() -> None:
    refused = problem(image_normalise, png_claiming_size(100_000, 100_000))
    assert (refused.field, refused.status) == ("image", 413)


def test_an_image_claiming_more_pixels_than_the_cap_is_refused() -> None:
    refused = problem(image_normalise, png_claiming_size(10_000, 5_000))  # 50 MP over 40 MP
    assert (refused.field, refused.status) == ("image", 413)
    assert "40000000" in refused.message


def test_the_pixel_cap_is_a_setting(settings) -> None:
    settings.MAX_IMAGE_PIXELS = 100
    refused = problem(image_normalise, png_bytes(size=(20, 20)))
    assert (refused.field, refused.status) == ("image", 413)


def test_an_image_over_the_byte_cap_is_refused(settings) -> None:
    settings.MAX_UPLOAD_BYTES = 100
    refused = problem(image_normalise, png_bytes(size=(64, 64)))
    assert (refused.field, refused.status) == ("image", 413)


def test_a_megabyte_prompt_is_refused_naming_the_field_and_cap() -> None:
    refused = problem(text_clean, "a" * 1_000_000, field="prompt")
    assert (refused.field, refused.status) == ("prompt", 400)
    assert "10000" in refused.message


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85"])
def test_control_characters_are_refused(bad: str) -> None:
    refused = problem(text_clean, f"a cat{bad}on a sofa", field="negative_prompt")
    assert refused.field == "negative_prompt"
    assert "control character" in refused.message


def test_tabs_and_newlines_are_kept() -> None:
    assert text_clean("a cat\ton a\r\nsofa\n", field="prompt") == "a cat\ton a\r\nsofa\n"


def test_a_prompt_that_is_not_a_string_is_refused() -> None:
    assert problem(text_clean, ["a", "cat"], field="prompt").field == "prompt"


def test_markup_is_kept_verbatim_for_the_pages_to_escape() -> None:
    script = "<script>alert('x')</script> & <b>"
    assert text_clean(script, field="prompt") == script
    assert tags_clean([[script, 0.5]]) == [[script, 0.5]]


@pytest.mark.parametrize(
    "tags",
    [
        "{not json",
        {"cat": 0.9},
        ["cat"],
        [["cat", 0.9, "extra"]],
        [["", 0.9]],
        [["x" * 201, 0.9]],
        [["cat\x00", 0.9]],
        [["cat", True]],
        [["cat", "0.9"]],
        [["cat", 1.5]],
        [["cat", -0.1]],
        [["cat", float("nan")]],
        [[7, 0.5]],
    ],
)
def test_malformed_tags_are_refused(tags: object) -> None:
    refused = problem(tags_clean, tags)
    assert (refused.field, refused.status) == ("tags", 400)


def test_more_tags_than_the_cap_are_refused() -> None:
    refused = problem(tags_clean, [[f"tag{n}", 0.5] for n in range(201)])
    assert refused.field == "tags"
    assert "200" in refused.message


def test_tags_may_arrive_as_a_json_string() -> None:
    assert tags_clean('[["cat", 0.9], ["sofa", 1]]') == [["cat", 0.9], ["sofa", 1.0]]


def test_no_tagger_and_an_empty_tagging_stay_different() -> None:
    assert tags_clean(None) is None
    assert tags_clean("null") is None
    assert tags_clean([]) == []


@pytest.mark.parametrize(("value", "level"), [("R", 4), (8, 8), ("Mature", 4), (32, 32)])
def test_labels_are_read_as_levels(value: object, level: int) -> None:
    assert label_clean(value) == level


def test_an_unknown_label_is_refused() -> None:
    assert problem(label_clean, 3).field == "label"


def test_the_val_split_counts_as_train() -> None:
    assert [split_clean(s) for s in ("train", "val", "test", None)] == [
        "train",
        "train",
        "test",
        None,
    ]


def test_metadata_with_a_nul_character_is_refused() -> None:
    assert problem(metadata_clean, {"note": "a\x00b"}).field == "metadata"


# -------------------------------------------------------------------------- normalisation


def test_the_digest_is_of_the_bytes_as_sent() -> None:
    data = jpeg_bytes()
    assert image_normalise(data).sha256 == hashlib.sha256(data).hexdigest()


def test_every_image_is_stored_as_an_rgb_png() -> None:
    result = image_normalise(jpeg_bytes(size=(40, 30)))
    image = Image.open(io.BytesIO(result.png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (40, 30))
    assert (result.width, result.height) == (40, 30)


def test_an_animated_gif_keeps_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    r, _, b = decoded(out.getvalue()).getpixel((8, 8))
    assert r > 200 and b < 50


def test_a_cmyk_jpeg_becomes_rgb_with_its_colours() -> None:
    cyan = image_bytes("JPEG", mode="CMYK", colour=(255, 0, 0, 0), quality=95)
    r, g, b = decoded(cyan).getpixel((4, 4))
    assert r < 40 and g > 200 and b > 200


def test_a_transparent_palette_png_is_composited_on_white() -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] * 256)
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=0)
    assert decoded(out.getvalue()).getpixel((2, 2)) == (255, 255, 255)


def test_a_palette_png_keeps_its_colours() -> None:
    image = Image.new("RGB", (8, 8), (0, 128, 255)).quantize(4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    assert decoded(out.getvalue()).getpixel((2, 2)) == (0, 128, 255)


def test_a_half_transparent_rgba_png_is_blended_with_white() -> None:
    data = image_bytes("PNG", mode="RGBA", colour=(0, 0, 0, 128))
    r, g, b = decoded(data).getpixel((2, 2))
    assert 120 <= r == g == b <= 130


def test_a_16_bit_png_is_rescaled_not_clipped_to_white() -> None:
    grey = np.full((8, 8), 32768, dtype=np.uint16)  # mid-grey on the 16-bit scale
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    assert Image.open(io.BytesIO(out.getvalue())).mode.startswith("I")
    r, g, b = decoded(out.getvalue()).getpixel((4, 4))
    assert 125 <= r == g == b <= 130


def test_a_float_tiff_is_rescaled() -> None:
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    out = io.BytesIO()
    Image.fromarray(ramp, mode="F").save(out, format="TIFF")
    image = decoded(out.getvalue())
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((7, 7)) == (255, 255, 255)


# -------------------------------------------------------------------- generation metadata


def png_with_text(**chunks: str) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_automatic1111_parameters_give_the_prompts() -> None:
    parameters = (
        "a lighthouse on a cliff,\n(paper cut art:1.2)\n"
        "Negative prompt: nsfw, nude\nwatermark\n"
        "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567"
    )
    result = image_normalise(png_with_text(parameters=parameters))
    assert result.prompt == "a lighthouse on a cliff,\n(paper cut art:1.2)"
    assert result.negative_prompt == "nsfw, nude\nwatermark"
    assert result.generation["generator"] == "automatic1111"
    assert result.generation["parameters"].startswith("Steps: 28")


def test_automatic1111_parameters_without_a_negative_prompt() -> None:
    result = image_normalise(png_with_text(parameters="a red car\nSteps: 20, Sampler: Euler"))
    assert (result.prompt, result.negative_prompt) == ("a red car", "")


def test_a_comfyui_graph_gives_the_prompts_of_the_sampler() -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "nsfw, nude", "clip": ["4", 1]}},
        "9": {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["10", 0]},
        },
        "10": {"class_type": "CLIPTextEncode", "inputs": {"text": "at dusk", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {"model": ["4", 0], "positive": ["9", 0], "negative": ["7", 0], "seed": 1},
        },
    }
    result = image_normalise(png_with_text(prompt=json.dumps(graph)))
    assert result.prompt == "a lighthouse, at dusk"
    assert result.negative_prompt == "nsfw, nude"
    assert result.generation == {"generator": "comfyui"}


def test_unreadable_metadata_is_ignored() -> None:
    result = image_normalise(png_with_text(prompt="{not json"))
    assert (result.prompt, result.generation) == ("", {})


def test_control_characters_inside_image_metadata_are_dropped_not_refused() -> None:
    result = image_normalise(png_with_text(parameters="a\x07 cat\nSteps: 20"))
    assert result.prompt == "a cat"
