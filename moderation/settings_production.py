"""Production settings: the base settings, hardened, with everything from the environment.

Use with DJANGO_SETTINGS_MODULE=moderation.settings_production. SECRET_KEY, ALLOWED_HOSTS,
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL are required: a missing one stops every
process at start with ImproperlyConfigured naming it. deploy/env.example lists every variable
and deploy/README.md the processes. `manage.py check --deploy` is clean with that file's values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from moderation.settings import *  # noqa: F403
from moderation.settings import MIDDLEWARE, VAR_DIR

_EMBEDDED_SECRET_KEY = "insecure-embedded-default-key-change-me"


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} must be set in the environment for moderation.settings_production "
            "(see deploy/env.example)"
        )
    return value


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (true or false), not {value!r}")


def _integer(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def _list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


# ------------------------------------------------------------------------------- core

DEBUG = False
SECRET_KEY = _required("SECRET_KEY")
if SECRET_KEY == _EMBEDDED_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must not be the embedded development key")
# Keys being rotated out: sessions and signatures made with them stay valid.
SECRET_KEY_FALLBACKS = _list("SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = _list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must list the site's host names, comma-separated, for "
        "moderation.settings_production (see deploy/env.example)"
    )
# Origins (scheme and host) allowed to POST forms when they are not the request's own host,
# e.g. https://moderation.example.com behind a proxy that rewrites the Host header.
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS")

# ---------------------------------------------------------------------------- database

DATABASES = {
    "default": dj_database_url.parse(
        _required("DATABASE_URL"),
        # Keep connections open between requests and tasks (seconds); 0 closes each time.
        conn_max_age=_integer("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "DATABASE_URL must name a PostgreSQL database (postgres://user:password@host:5432/name): "
        "the review queue relies on its row locks"
    )
CONN_MAX_AGE = DATABASES["default"]["CONN_MAX_AGE"]

# ------------------------------------------------------------------------------ celery

CELERY_BROKER_URL = _required("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = False
# Redis (and SQS) redeliver a message not acknowledged within this many seconds: it must be
# longer than the longest task, a full retrain. RabbitMQ needs no such option.
if CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _integer("CELERY_VISIBILITY_TIMEOUT", 3600)
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}

# ------------------------------------------------------------------------------- https

# Behind a proxy that terminates TLS, the proxy must set this header (and strip it from
# clients): X-Forwarded-Proto: https. Empty SECURE_PROXY_SSL_HEADER turns it off.
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
)
SECURE_SSL_REDIRECT = _flag("SECURE_SSL_REDIRECT", True)
# Start small (300) when first moving a site to HTTPS, then raise it to a year.
SECURE_HSTS_SECONDS = _integer("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _flag("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Cookies only over HTTPS; plain HTTP (a test talking to gunicorn directly) sets these to 0.
SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = _flag("CSRF_COOKIE_SECURE", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = _integer("SESSION_COOKIE_AGE", 12 * 3600)

# ------------------------------------------------------------------------ sign-in lockout

# django-axes locks a user out per address (moderation/settings.py). Behind proxies, every
# request comes from the nearest proxy's address: TRUSTED_PROXY_COUNT, the number of proxies
# in front of gunicorn that each append the address they received from to X-Forwarded-For
# (nginx: proxy_add_x_forwarded_for), makes it the address the outermost proxy saw; entries
# further left can be forged by the client. 0 (the default): REMOTE_ADDR.
TRUSTED_PROXY_COUNT = _integer("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(
        f"TRUSTED_PROXY_COUNT must not be negative, not {TRUSTED_PROXY_COUNT}"
    )


def _client_address(request) -> str | None:
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    forwarded = [address.strip() for address in forwarded if address.strip()]
    if TRUSTED_PROXY_COUNT and len(forwarded) >= TRUSTED_PROXY_COUNT:
        return forwarded[-TRUSTED_PROXY_COUNT]
    return request.META.get("REMOTE_ADDR")


AXES_CLIENT_IP_CALLABLE = _client_address

# ------------------------------------------------------------------------ static, media

# WhiteNoise serves the collected, hashed and compressed static files from gunicorn; a proxy
# may serve STATIC_ROOT at STATIC_URL instead (WhiteNoise then sees no static requests).
MIDDLEWARE = list(MIDDLEWARE)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# Uploaded images: on a local or shared file system (every web and worker process must see
# it) unless MEDIA_STORAGE names another Django storage backend by its dotted path, e.g.
# storages.backends.s3.S3Storage (install django-storages[s3]); MEDIA_STORAGE_OPTIONS is a
# JSON object of that backend's options (or configure it with its own settings/variables).
# Images are served by the review pages to moderators only, never at MEDIA_URL.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
_media_backend = os.environ.get("MEDIA_STORAGE", "").strip()
try:
    _media_options = json.loads(os.environ.get("MEDIA_STORAGE_OPTIONS", "").strip() or "{}")
except json.JSONDecodeError as error:
    raise ImproperlyConfigured(f"MEDIA_STORAGE_OPTIONS must be a JSON object: {error}") from None
if not isinstance(_media_options, dict):
    raise ImproperlyConfigured("MEDIA_STORAGE_OPTIONS must be a JSON object")
STORAGES = {
    "default": {
        "BACKEND": _media_backend or "django.core.files.storage.FileSystemStorage",
        "OPTIONS": _media_options,
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# ------------------------------------------------------------------------------ models

# Where trained bundles live: every worker (and the web process) must read the same path,
# and training workers write new candidates into it.
BUNDLE_DIR = Path(os.environ.get("BUNDLE_DIR", VAR_DIR / "bundles"))
# "auto" (CUDA when the process sees a GPU), "cpu", "cuda" or "cuda:N".
RATING_DEVICE = os.environ.get("RATING_DEVICE", "auto").strip() or "auto"
if RATING_DEVICE not in {"auto", "cpu", "cuda"} and not RATING_DEVICE.startswith("cuda:"):
    raise ImproperlyConfigured(
        f"RATING_DEVICE must be auto, cpu, cuda or cuda:N, not {RATING_DEVICE!r}"
    )

# ----------------------------------------------------------------------------- logging

# Everything to stdout: systemd's journal, a container runtime or a Procfile runner keeps it.
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Server errors with their tracebacks; 4xx are the API's normal answers.
        "django.request": {"level": "ERROR", "propagate": True},
        "django.security": {"level": "WARNING", "propagate": True},
    },
}
