"""Brute-force protection of the sign-in page (django-axes): after AXES_FAILURE_LIMIT wrong
passwords for one user from one address, that user is refused from that address, even with the
right password, until the cool-off passes or an admin unlocks it; other addresses and other
users still sign in, and a successful sign-in clears the count."""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from tests.moderation.people import PASSWORD

LOGIN = "/accounts/login/"
HOME = "203.0.113.10"
ELSEWHERE = "198.51.100.20"


def sign_in(client: Client, username: str, password: str, address: str = HOME):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def fail(username: str, times: int, address: str = HOME):
    """`times` wrong passwords for `username` from `address`; the last response."""
    client = Client()
    for _ in range(times):
        response = sign_in(client, username, "wrong password", address)
    return response


def assert_locked_out(response, username: str) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert f"<strong>{username}</strong>" in page
    assert f"is locked after {settings.AXES_FAILURE_LIMIT} failed sign-ins from this address" in (
        " ".join(page.split())
    )
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    assert f"Try again in {minutes} minutes" in page
    assert "axes_reset_username USERNAME" in page


def assert_signs_in(username: str, address: str = HOME) -> None:
    client = Client()
    response = sign_in(client, username, PASSWORD, address)
    assert response.status_code == 302, response.status_code
    assert response.url == "/review/"
    assert signed_in_as(client) == username


def test_the_right_password_is_refused_after_too_many_wrong_ones(alice) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    # Below the limit a wrong password is the sign-in page's usual error.
    response = fail("alice", limit - 1)
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    # The limit-th failure locks the account from this address...
    assert_locked_out(fail("alice", 1), "alice")
    # ...and the next attempt, with the right password, is refused the same way.
    client = Client()
    response = sign_in(client, "alice", PASSWORD)
    assert_locked_out(response, "alice")
    assert signed_in_as(client) is None
    assert client.get("/review/").status_code == 302


def test_the_lockout_is_for_one_user_from_one_address(alice, bob) -> None:
    assert_locked_out(fail("alice", settings.AXES_FAILURE_LIMIT), "alice")
    assert_locked_out(sign_in(Client(), "alice", PASSWORD), "alice")
    # alice from another address, and bob from the same one, still sign in.
    assert_signs_in("alice", ELSEWHERE)
    assert_signs_in("bob", HOME)
    assert_locked_out(sign_in(Client(), "alice", PASSWORD), "alice")


def test_an_admin_unlocks_the_account_in_the_admin(alice) -> None:
    assert_locked_out(fail("alice", settings.AXES_FAILURE_LIMIT), "alice")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    changelist = "/admin/axes/accessattempt/"
    page = admin.get(changelist)
    assert page.status_code == 200
    assert "alice" in page.content.decode()
    rows = list(AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True))
    assert rows
    response = admin.post(
        changelist, {"action": "delete_selected", "_selected_action": rows, "post": "yes"}
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert_signs_in("alice", HOME)


def test_a_successful_sign_in_clears_the_count(alice) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    fail("alice", limit - 1)
    assert_signs_in("alice", HOME)
    # The count starts again: limit - 1 more failures do not lock, the limit-th does.
    assert fail("alice", limit - 1).status_code == 200
    assert_locked_out(fail("alice", 1), "alice")


# The production settings take the client's address from X-Forwarded-For behind proxies.

PRODUCTION = "moderation.settings_production"


def production_settings(monkeypatch, **env: str):
    for name, value in {
        "SECRET_KEY": "a-production-key-that-is-long-enough-for-the-deploy-checks-0123456789",
        "ALLOWED_HOSTS": "moderation.example.com",
        "DATABASE_URL": "postgres://moderation:secret@db.internal:5432/moderation",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(PRODUCTION, None)
    try:
        return importlib.import_module(PRODUCTION)
    finally:
        sys.modules.pop(PRODUCTION, None)


def request(forwarded_for: str | None, remote: str = "127.0.0.1") -> SimpleNamespace:
    meta = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return SimpleNamespace(META=meta)


def test_production_reads_the_address_the_outermost_proxy_saw(monkeypatch) -> None:
    address = production_settings(monkeypatch).AXES_CLIENT_IP_CALLABLE
    # No proxy counted: the peer's address; a client's X-Forwarded-For is ignored.
    assert address(request("198.51.100.1", remote="203.0.113.7")) == "203.0.113.7"

    address = production_settings(monkeypatch, TRUSTED_PROXY_COUNT="1").AXES_CLIENT_IP_CALLABLE
    assert address(request("203.0.113.7")) == "203.0.113.7"
    # What the client forged is left of what the proxy appended.
    assert address(request("198.51.100.1, 203.0.113.7")) == "203.0.113.7"
    # Not through the proxy: the peer's address.
    assert address(request(None, remote="203.0.113.9")) == "203.0.113.9"

    address = production_settings(monkeypatch, TRUSTED_PROXY_COUNT="2").AXES_CLIENT_IP_CALLABLE
    assert address(request("198.51.100.1, 203.0.113.7, 10.0.0.2")) == "203.0.113.7"


def test_production_refuses_a_negative_proxy_count(monkeypatch) -> None:
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXY_COUNT"):
        production_settings(monkeypatch, TRUSTED_PROXY_COUNT="-1")
