"""The error pages (issue 18): 403, 404, 500 and an expired form in the site's layout, each
with a way back; the API keeps its JSON errors; the favicon; and the demo's web server, which
shows the site's 404 too, never Django's debug page."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client, RequestFactory

from moderation.demo.management.commands.demo import web_server
from moderation.errors import server_error
from moderation.media.models import ApiClient

ROOT = Path(__file__).resolve().parents[2]
# Markup in a path (no slash in it: one path segment, so that it reaches the views).
SCRIPT = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
LAYOUT = '<header class="topbar">'
REVIEW_LINK = '<a href="/review/">Back to the review page</a>'
LOGIN_LINK = '<a href="/accounts/login/'


@pytest.fixture(autouse=True)
def _debug_off(settings):
    settings.DEBUG = False


def page(response) -> str:
    return response.content.decode()


def test_a_moderator_gets_the_sites_403_on_an_admin_page(client, alice):
    client.force_login(alice)
    response = client.get("/dashboards/")
    assert response.status_code == 403
    html = page(response)
    assert LAYOUT in html and "alice" in html  # signed in: the top bar with her name
    assert "This page is for admins." in html
    assert REVIEW_LINK in html
    assert LOGIN_LINK not in html


def test_the_403_page_escapes_the_path(client, alice):
    client.force_login(alice)
    response = client.get(f"/dashboards/versions/{SCRIPT}/")
    assert response.status_code == 403
    assert SCRIPT not in page(response)
    assert ESCAPED in page(response)


def test_someone_with_no_role_is_told_so_instead_of_sent_back_to_a_403(client, mallory):
    client.force_login(mallory)
    response = client.get("/review/")
    assert response.status_code == 403
    assert "The review pages are for moderators." in page(response)
    assert "an admin can add it to the moderators group" in page(response)
    assert REVIEW_LINK not in page(response)


def test_a_missing_page_is_the_sites_404_with_a_way_back_and_to_log_in(client, db):
    response = client.get(f"/no-such-page/{SCRIPT}/")
    assert response.status_code == 404
    html = page(response)
    assert LAYOUT in html
    assert "Page not found" in html
    assert REVIEW_LINK in html and LOGIN_LINK in html
    assert SCRIPT not in html and ESCAPED in html


def test_a_signed_in_moderator_is_not_offered_to_log_in_on_a_404(client, alice):
    client.force_login(alice)
    html = page(client.get("/review/items/00000000-0000-0000-0000-000000000000/"))
    assert "Page not found" in html and REVIEW_LINK in html
    assert LOGIN_LINK not in html


def test_a_server_error_is_the_sites_500_page(client, alice, monkeypatch):
    def broken(**filters):
        raise RuntimeError("a bug")

    monkeypatch.setattr("moderation.review.views.prediction_list_down_classed", broken)
    client.raise_request_exception = False
    client.force_login(alice)
    response = client.get(f"/review/disagreements/?model={SCRIPT}")
    assert response.status_code == 500
    html = page(response)
    assert LAYOUT in html
    assert "Something went wrong on our side" in html
    assert REVIEW_LINK in html and LOGIN_LINK in html
    assert SCRIPT not in html
    # Rendered without the request: no user, so no top bar of a signed-in person.
    assert "alice" not in html


def test_the_500_page_needs_no_request_context_nor_the_database():
    # No session, no user (no middleware ran), and no `db` fixture: a query would raise.
    response = server_error(RequestFactory().get("/review/"))
    assert response.status_code == 500
    assert LAYOUT in page(response) and REVIEW_LINK in page(response)


def test_the_api_keeps_its_json_errors(client, db, monkeypatch):
    _, token = ApiClient.issue("platform")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)

    def broken(**filters):
        raise RuntimeError("a bug")

    monkeypatch.setattr("moderation.media.api.item_list", broken)
    failed = api.get("/api/v1/items/")
    assert failed.status_code == 500
    assert failed.json() == {"error": "server error: it has been logged", "field": None}
    missing = client.get("/api/v2/items/")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no API endpoint at /api/v2/items/", "field": None}


def test_a_form_sent_with_an_expired_token_gets_the_403_page_saying_so(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/review/claim/", HTTP_REFERER="http://testserver/review/")
    assert response.status_code == 403
    html = page(response)
    assert LAYOUT in html and "alice" in html
    assert "This form has expired" in html and "Reload the page" in html
    assert '<a href="http://testserver/review/">Reload the page</a>' in html
    assert REVIEW_LINK in html


def test_the_expired_form_page_links_back_only_to_this_site(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/review/claim/", HTTP_REFERER="https://elsewhere.example/")
    assert response.status_code == 403
    assert "elsewhere.example" not in page(response)


def test_every_page_names_the_icon_and_favicon_ico_leads_to_it(client, alice):
    assert finders.find("favicon.svg") is not None
    client.force_login(alice)
    icon = static("favicon.svg")
    assert f'<link rel="icon" href="{icon}" type="image/svg+xml">' in page(client.get("/review/"))
    response = Client().get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (302, icon)


# --------------------------------------------------------------- the demo's web server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, str, str]:
    """Status, content type and body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def demo_web(tmp_path, monkeypatch):
    """The web server exactly as `manage.py demo` starts it, on the embedded settings."""
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)  # the demo's default, not this shell's
    port = free_port()
    command, env = web_server(port)
    env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "moderation.settings",
        "MODERATION_VAR_DIR": str(tmp_path),
        "WARM_CHAMPION": "0",  # no bundle here: nothing to load
    }
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch(f"{url}/accounts/login/")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "web.log").read_text()
                assert time.monotonic() < deadline, "the demo's web server did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_the_demo_shows_the_sites_404_and_still_serves_static_files(demo_web):
    status, _, html = fetch(f"{demo_web}/no-such-page/")
    assert status == 404
    assert LAYOUT in html and "Page not found" in html
    assert "Django tried these URL patterns" not in html  # the debug page's words
    status, kind, _ = fetch(f"{demo_web}/static/review/review.css")
    assert (status, kind.split(";")[0]) == (200, "text/css")
    # urllib follows the redirect of /favicon.ico to the icon.
    status, kind, svg = fetch(f"{demo_web}/favicon.ico")
    assert (status, kind.split(";")[0]) == (200, "image/svg+xml")
    assert svg.startswith("<svg")
