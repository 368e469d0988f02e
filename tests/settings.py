"""Test settings: the real PostgreSQL on this machine, media in a scratch directory.

TEST_DATABASE_URL overrides the database (sqlite:///... runs the suite on SQLite); where nothing
answers at a local one, tests/services.py starts a throwaway server there for the session.
"""

import os
import tempfile

import dj_database_url

from moderation.settings import *  # noqa: F403

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default's options: wait for SQLite's lock, take it when a write begins.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["ENGINE"] = "moderation.db.sqlite3"
# A worker started by a test shares the test's media directory and broker through these.
MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="moderation-media-")
# Bundles that tests train or register go to a scratch directory, never the project's var/.
BUNDLE_DIR = os.environ.get("TEST_BUNDLE_DIR") or tempfile.mkdtemp(prefix="moderation-bundles-")
# Tasks are called directly in tests; queuing goes to memory unless a test starts a worker.
CELERY_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "memory://")
# The same visibility timeout as the project's settings, for the test's broker; the crash tests
# set it to seconds, and a worker looks for such messages every second (kombu: every ~100 s).
if CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The API's per-client throttle out of the way of tests that send many requests; the throttle's
# own test lowers it.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "100000/min"}}  # noqa: F405
# Fewer bootstrap resamples for the gate: the same code, cheaper tests.
GATE_BOOTSTRAP = 50
# Live figures counted on every view: a test sees the labels it has just written.
DASHBOARD_LIVE_SECONDS = 0
