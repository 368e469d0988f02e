"""Debian's Chromium, driven by Playwright, for the demo's screenshots and the browser tests.

Playwright's own browser download cannot reach its host here, so the system's Chromium is
launched instead, with the flags that keep it from reaching for hosts it cannot reach
(background networking, component updates, sync).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
