"""A moderator reviews three items in Debian's Chromium, with the hotkeys only.

Playwright's sync API runs an event loop in this thread, so Django would refuse ORM calls
made from the test: DJANGO_ALLOW_ASYNC_UNSAFE lifts that for this module's test only. The
database is still read only outside the `sync_playwright()` block: inside it, Playwright's
greenlet gives Django a fresh context, hence a second connection that nothing closes, and
the test database could not be dropped at the end of the session.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import expect, sync_playwright

from moderation.demo.chromium import launch, log_in
from moderation.review.models import Label
from tests.moderation.people import PASSWORD, make_user
from tests.moderation.screenshots import screenshot_path

from .conftest import make_item, make_prediction, make_version


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def sunset_beach(width: int = 768, height: int = 512) -> bytes:
    """A gradient landscape: evening sky, a low sun, the sea and a strip of beach."""
    y = np.linspace(0, 1, height)[:, None, None]
    top, glow = np.array([38, 52, 110]), np.array([250, 150, 90])
    sky = top + (glow - top) * y**1.6
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    horizon, shore = int(height * 0.62), int(height * 0.82)
    sea_y = np.linspace(0, 1, shore - horizon)[:, None, None]
    pixels[horizon:shore] = np.array([70, 80, 130]) + np.array([-40, -30, -40]) * sea_y
    sand_y = np.linspace(0, 1, height - shore)[:, None, None]
    pixels[shore:] = np.array([214, 170, 120]) + np.array([-40, -40, -30]) * sand_y
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy, r = int(width * 0.62), horizon - int(height * 0.05), int(height * 0.09)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 214, 140))
    for i in range(8):  # the sun's reflection on the water
        w = r * (1 - i / 9)
        yy = horizon + 6 + i * 9
        draw.line((cx - w, yy, cx + w, yy), fill=(250, 190, 120), width=3)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def beach_explanation(prompt: str) -> dict:
    """What the worker stores for the beach item: the tags that set the rules' R, and the
    words whose removal lowers the neural experts' PG13 most."""

    def word(text: str, weight: float) -> dict:
        start = prompt.index(text)
        return {"word": text, "weight": weight, "spans": [[start, start + len(text)]]}

    return {
        "version": 1,
        "partial": False,
        "skipped": [],
        "experts": {
            "tag_rules": {
                "rating": 4,
                "method": "rules",
                "top": [
                    {"tag": "cleavage", "weight": 4.0, "via": "female swimwear or underwear"},
                    {"tag": "swimsuit", "weight": 4.0, "via": "female swimwear or underwear"},
                ],
            },
            "lstm": {
                "rating": 2,
                "method": "occlusion",
                "top": [word("swimsuit", 0.27), word("beach", 0.05)],
            },
            "distilbert": {
                "rating": 2,
                "method": "occlusion",
                "top": [word("swimsuit", 0.41), word("woman", 0.08)],
            },
        },
    }


def around(page, top: str, bottom: str, margin: int = 12) -> dict:
    """A clip of the page's full width from the top of one element to the bottom of another."""
    first, last = page.locator(top).bounding_box(), page.locator(bottom).bounding_box()
    y = first["y"] - margin
    return {
        "x": 0,
        "y": y,
        "width": page.viewport_size["width"],
        "height": last["y"] + last["height"] + margin - y,
    }


def panel_shows(page, item) -> None:
    expect(page.locator("#review-panel")).to_have_attribute("data-item", str(item.uid))


@pytest.mark.django_db(transaction=True)
def test_alice_reviews_three_items_with_the_hotkeys(live_server, tmp_path):
    alice = make_user("alice", "moderators")
    champion = make_version("2026-11-26-a")
    beach_prompt = (
        "portrait of a woman in a red swimsuit on a beach at sunset, golden hour,\n"
        "85mm, film grain, highly detailed"
    )
    beach = make_item(
        source="civitai",
        external_id="40718233",
        split="test",
        prompt=beach_prompt,
        negative_prompt="nsfw, nude, lowres, blurry, extra fingers",
        tags=[
            ["1girl", 0.97],
            ["swimsuit", 0.94],
            ["beach", 0.91],
            ["sunset", 0.88],
            ["outdoors", 0.83],
            ["cleavage", 0.46],
        ],
    )
    beach.image.save("beach.png", ContentFile(sunset_beach()), save=False)
    beach.width, beach.height = 768, 512
    beach.save()
    make_prediction(
        beach,
        champion,
        experts={"tag_rules": 4, "lstm": 2, "minilm": 2, "open_nsfw": 4, "distilbert": 2},
        voter=2,
        mlp=2,
        mlp_probs=[0.08, 0.52, 0.34, 0.05, 0.01],
        explanation=beach_explanation(beach_prompt),
    )
    bedroom = make_item(
        source="api",
        external_id="gen-5521",
        prompt="two lovers in bed, sheer lingerie, intimate, soft light",
        tags=None,
    )
    make_prediction(
        bedroom,
        champion,
        experts={"tag_rules": None, "lstm": 2, "minilm": 2},
        voter=2,
        mlp=2,
        mlp_probs=[0.1, 0.7, 0.15, 0.05, 0.0],
    )
    unpredicted = make_item(source="api", external_id="gen-5522", prompt="a forbidden thing")

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, f"{live_server.url}/review/", "alice", PASSWORD)

        panel_shows(page, beach)
        page.wait_for_function("document.querySelector('#review-panel img').naturalWidth > 0")
        expect(page.locator(".dcm-notes")).to_contain_text("tag_rules rates R")
        page.screenshot(path=str(screenshot_path("review-page.png", tmp_path)), full_page=True)
        # What pushed the rating up: the word in the prompt, the tags in the list.
        expect(page.locator("pre.prompt mark.why", has_text="swimsuit")).to_be_visible()
        expect(page.locator("li.tag.why", has_text="cleavage")).to_be_visible()
        expect(page.locator(".why-list")).to_contain_text("female swimwear or underwear")
        page.screenshot(
            path=str(screenshot_path("explanations.png", tmp_path)),
            clip=around(page, "#review-panel .card.text", "#review-panel .why-list"),
            full_page=True,
        )
        page.evaluate("window.stillTheSamePage = true")

        page.keyboard.press("Enter")  # accept the suggested PG13
        panel_shows(page, bedroom)
        expect(page.locator("#review-panel")).to_contain_text("Prompt-only item, no image")
        page.keyboard.press("4")  # correct upward to X
        panel_shows(page, unpredicted)
        expect(page.locator("#review-panel")).to_contain_text("Prediction pending")
        page.keyboard.press("b")  # Blocked asks why first: the reason field takes the keys
        expect(page.locator("#review-panel input[name=reason]")).to_be_focused()
        page.keyboard.type("a forbidden thing, 3 strikes")
        page.keyboard.press("Enter")
        expect(page.locator("#review-panel")).to_contain_text("The queue is empty")
        # Each next item was swapped in: no full page load happened.
        assert page.evaluate("window.stillTheSamePage") is True

        page.goto(f"{live_server.url}/review/disagreements/")
        rows = page.locator("table.list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("gen-5521")
        expect(rows.first).to_contain_text("alice")
        browser.close()

    labels = {label.item_id: label for label in Label.objects.all()}
    assert {item: (label.level, label.moderator) for item, label in labels.items()} == {
        beach.pk: (2, alice),
        bedroom.pk: (8, alice),
        unpredicted.pk: (32, alice),
    }
    assert labels[unpredicted.pk].decision.reason == "a forbidden thing, 3 strikes"
    for item, split in ((beach, "test"), (bedroom, "train"), (unpredicted, "train")):
        item.refresh_from_db()
        assert item.split == split


@pytest.mark.django_db(transaction=True)
def test_a_key_pressed_the_moment_the_next_item_appears_stays_on_the_page(live_server):
    """htmx wires a swapped-in form only when the swap settles; a key pressed before that
    must still go through htmx, not post the form natively and reload the page. The settle
    delay is stretched to three seconds so the key always lands inside that window."""
    make_user("bob", "moderators")
    champion = make_version("2026-11-26-a")
    first, second, third = (
        make_item(source="api", external_id=f"gen-{n}", prompt=f"a lighthouse, study {n}")
        for n in range(3)
    )
    for item in (first, second, third):
        make_prediction(item, champion, experts={"lstm": 1}, voter=1, mlp=1)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        log_in(page, f"{live_server.url}/review/", "bob", PASSWORD)
        panel_shows(page, first)
        page.wait_for_load_state("load")
        page.evaluate("htmx.config.defaultSettleDelay = 3000; window.stillTheSamePage = true")

        page.keyboard.press("1")
        panel_shows(page, second)
        page.keyboard.press("2")  # before the swap has settled
        panel_shows(page, third)
        assert page.evaluate("window.stillTheSamePage") is True
        browser.close()

    assert sorted(Label.objects.values_list("item__external_id", "level")) == [
        ("gen-0", 1),
        ("gen-1", 2),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_late_key_meets_a_conflict_and_a_correction_needs_a_reason(
    live_server, settings, tmp_path
):
    """alice's claim runs out while she looks; bob takes the item and rates it X. alice's key
    then writes nothing: the panel shows bob's label, and she confirms hers with a reason."""
    settings.CLAIM_MINUTES = 0.05  # 3 s
    make_user("alice", "moderators")
    make_user("bob", "moderators")
    champion = make_version("2026-11-26-a")
    item = make_item(
        source="civitai",
        external_id="40718233",
        prompt="a woman in front of a bathroom mirror, towel, steam, soft light",
        tags=[["1girl", 0.98], ["towel", 0.91], ["mirror", 0.88], ["bathroom", 0.85]],
    )
    make_prediction(item, champion, experts={"lstm": 2, "tag_rules": 4}, voter=2, mlp=2)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        alice = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(alice, f"{live_server.url}/review/", "alice", PASSWORD)
        panel_shows(alice, item)
        alice.wait_for_timeout(3500)  # her claim expires

        bob = browser.new_context().new_page()
        log_in(bob, f"{live_server.url}/review/", "bob", PASSWORD)
        panel_shows(bob, item)
        bob.bring_to_front()  # two pages in one browser: keys go to the page in front
        bob.wait_for_load_state("networkidle")
        bob.keyboard.press("4")
        expect(bob.locator("#review-panel")).to_contain_text("The queue is empty")

        alice.bring_to_front()
        alice.keyboard.press("1")
        panel = alice.locator("#review-panel")
        expect(panel).to_contain_text("Not recorded: someone decided this item first")
        expect(panel).to_contain_text("bob")
        expect(panel.locator(".chip").first).to_have_text("X")
        alice.screenshot(path=str(screenshot_path("conflict.png", tmp_path)), full_page=True)

        alice.locator("#correction-reason").fill(
            "No nudity: the towel covers her, as the tags say."
        )
        alice.get_by_role("button", name="Confirm PG as a correction").click()
        expect(panel).to_contain_text("The queue is empty")
        expect(panel).to_contain_text("Recorded as a correction")
        browser.close()

    bobs, alices = Label.objects.order_by("pk")
    assert (bobs.level, bobs.moderator.username) == (8, "bob")
    assert (alices.level, alices.moderator.username, alices.supersedes) == (1, "alice", bobs)
    assert alices.decision.reason == "No nudity: the towel covers her, as the tags say."
