"""The production settings: required variables, and `manage.py check --deploy` clean."""

from __future__ import annotations

import importlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[3]
MODULE = "moderation.settings_production"
REQUIRED = ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"]


def realistic_env() -> dict[str, str]:
    """What deploy/env.example asks an operator to set, with the defaults for the rest."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "moderation.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://moderation.example.com",
        "DATABASE_URL": "postgres://moderation:secret@db.internal:5432/moderation",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        "MEDIA_ROOT": "/srv/moderation/media",
        "STATIC_ROOT": "/srv/moderation/static",
        "BUNDLE_DIR": "/srv/moderation/bundles",
        "RATING_DEVICE": "cuda",
    }


def load(monkeypatch, env: dict[str, str]):
    """Import the production module afresh with exactly `env` for its variables."""
    for name in [*REQUIRED, "DJANGO_DEBUG", "SECURE_SSL_REDIRECT", "MEDIA_STORAGE"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(MODULE, None)
    try:
        return importlib.import_module(MODULE)
    finally:
        sys.modules.pop(MODULE, None)


def test_the_production_settings_are_hardened(monkeypatch) -> None:
    settings = load(monkeypatch, realistic_env())
    assert settings.DEBUG is False
    assert settings.ALLOWED_HOSTS == ["moderation.example.com"]
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 60
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    assert settings.SECURE_SSL_REDIRECT and settings.SECURE_HSTS_SECONDS >= 31_536_000
    assert settings.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS == {"visibility_timeout": 3600}
    middleware = settings.MIDDLEWARE
    assert middleware[middleware.index("django.middleware.security.SecurityMiddleware") + 1] == (
        "whitenoise.middleware.WhiteNoiseMiddleware"
    )
    assert settings.STORAGES["staticfiles"]["BACKEND"].startswith("whitenoise.")
    assert settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage")
    assert str(settings.MEDIA_ROOT) == "/srv/moderation/media"
    assert str(settings.BUNDLE_DIR) == "/srv/moderation/bundles"
    assert settings.RATING_DEVICE == "cuda"


def test_another_media_storage_is_named_by_its_dotted_path(monkeypatch) -> None:
    env = {
        **realistic_env(),
        "MEDIA_STORAGE": "storages.backends.s3.S3Storage",
        "MEDIA_STORAGE_OPTIONS": '{"bucket_name": "moderation-media"}',
    }
    settings = load(monkeypatch, env)
    assert settings.STORAGES["default"] == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "moderation-media"},
    }


@pytest.mark.parametrize("name", REQUIRED)
def test_a_missing_required_variable_is_named(monkeypatch, name: str) -> None:
    env = realistic_env()
    del env[name]
    with pytest.raises(ImproperlyConfigured, match=name):
        load(monkeypatch, env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "sqlite:////srv/db.sqlite3", "PostgreSQL"),
        ("SECRET_KEY", "insecure-embedded-default-key-change-me", "embedded"),
        ("ALLOWED_HOSTS", " , ", "ALLOWED_HOSTS"),
        ("SECURE_SSL_REDIRECT", "maybe", "SECURE_SSL_REDIRECT"),
        ("RATING_DEVICE", "tpu", "RATING_DEVICE"),
        ("MEDIA_STORAGE_OPTIONS", "[1]", "MEDIA_STORAGE_OPTIONS"),
    ],
)
def test_a_wrong_value_is_refused(monkeypatch, name: str, value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        load(monkeypatch, {**realistic_env(), name: value})


def test_check_deploy_is_clean_with_a_realistic_environment() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "DJANGO_", "SECURE_", "SESSION_", "CSRF_"))
    }
    env.update(realistic_env(), DJANGO_SETTINGS_MODULE=MODULE)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr
