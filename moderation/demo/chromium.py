"""Debian's Chromium, driven by Playwright, for the demo's screenshots and the browser tests,
and the sign-in they all begin with.

Playwright's own browser download cannot reach its host here, so the system's Chromium is
launched instead, with the flags that keep it from reaching for hosts it cannot reach
(background networking, component updates, sync).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

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


def log_in(page: Page, url: str, username: str, password: str) -> None:
    """Open `url` (the login form, or a page that sends an anonymous visitor to it) and sign
    in; the page then goes where the form sends it."""
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
