"""Screenshot the review page of a running demo, at the first queued item with an image.

    .venv/bin/python -m moderation.demo.screenshot http://127.0.0.1:8000/ moderator PASSWORD \
        docs/demo-review.png

Logs in as the moderator in Debian's Chromium and skips (the `s` hotkey: the item returns to
the queue for others) prompt-only items until one with an image is shown. Needs the dev extra
(Playwright); not part of the test suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from moderation.demo.chromium import launch, log_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-skips", type=int, default=200)
    args = parser.parse_args()

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, args.url.rstrip("/") + "/review/", args.username, args.password)
        page.wait_for_selector("#review-panel")
        skips = 0
        while not page.locator("#review-panel img").count():
            if skips == args.max_skips:
                raise SystemExit(f"no item with an image in the first {skips} of the queue")
            shown = page.locator("#review-panel").get_attribute("data-item")
            page.keyboard.press("s")
            page.wait_for_function(
                f"document.querySelector('#review-panel')?.dataset.item !== '{shown}'"
            )
            skips += 1
        page.wait_for_function("document.querySelector('#review-panel img').naturalWidth > 0")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        print(f"skipped {skips} prompt-only items; wrote {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
