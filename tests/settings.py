"""Test settings: the real PostgreSQL on this machine, media in a scratch directory.

TEST_DATABASE_URL overrides the database (sqlite:///... runs the suite on SQLite).
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
# A worker started by a test shares the test's media directory and broker through these.
MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="moderation-media-")
# Bundles that tests train or register go to a scratch directory, never the project's var/.
BUNDLE_DIR = os.environ.get("TEST_BUNDLE_DIR") or tempfile.mkdtemp(prefix="moderation-bundles-")
# Tasks are called directly in tests; queuing goes to memory unless a test starts a worker.
CELERY_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "memory://")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Fewer bootstrap resamples for the gate: the same code, cheaper tests.
GATE_BOOTSTRAP = 50
