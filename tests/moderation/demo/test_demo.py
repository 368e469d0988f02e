"""`manage.py demo` on a fresh SQLite database and the embedded broker, as `make demo` runs it,
with a tiny bundle instead of the long training and a real Celery worker."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples

ROOT = Path(__file__).resolve().parents[3]
# Settings the demo must not inherit from the test run: it uses the embedded defaults.
OVERRIDES = (
    "DATABASE_URL",
    "SQLITE_PATH",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "BUNDLE_DIR",
    "MEDIA_ROOT",
)
LIMIT = 15  # items of each corpus file


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("demo-bundle") / "bundle"
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo-var")


def run_demo(var_dir: Path, bundle: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env |= {"DJANGO_SETTINGS_MODULE": "moderation.settings", "MODERATION_VAR_DIR": str(var_dir)}
    command = [sys.executable, "manage.py", "demo", "--bundle", str(bundle), "--no-serve"]
    result = subprocess.run(
        [*command, "--limit", str(LIMIT), "--timeout", "180"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def counts(var_dir: Path) -> dict[str, int]:
    with sqlite3.connect(var_dir / "moderation.sqlite3") as db:
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "items": one("SELECT count(*) FROM media_mediaitem"),
            "with_image": one("SELECT count(*) FROM media_mediaitem WHERE image != ''"),
            "predictions": one("SELECT count(*) FROM inference_prediction"),
            "queued": one("SELECT count(*) FROM review_reviewstate WHERE state = 'queued'"),
            "versions": one("SELECT count(*) FROM inference_modelversion"),
            "gold": one("SELECT count(*) FROM review_golditem"),
            "champions": one(
                "SELECT count(*) FROM inference_modelversion WHERE status = 'champion'"
            ),
            "admins": one(
                "SELECT count(*) FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id "
                "JOIN auth_group g ON g.id = ug.group_id "
                "WHERE u.username = 'admin' AND g.name = 'admins' AND u.is_superuser"
            ),
            "moderators": one(
                "SELECT count(*) FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id "
                "JOIN auth_group g ON g.id = ug.group_id "
                "WHERE u.username = 'moderator' AND g.name = 'moderators'"
            ),
        }


@pytest.mark.slow
def test_first_run_sets_up_and_the_real_worker_predicts(var_dir, tiny_bundle):
    result = run_demo(var_dir, tiny_bundle)

    found = counts(var_dir)
    # 15 of each of the three corpus files, and the photographs with their image.
    assert found["items"] == 3 * LIMIT + 5
    assert found["with_image"] == 5
    assert found["predictions"] > 0
    assert found["queued"] > 0
    assert found["versions"] == found["champions"] == 1
    assert found["admins"] == found["moderators"] == 1
    assert "predictions are flowing" in result.stdout
    # Label quality is seeded: gold items, and the big-downgrade rule's reach is reported.
    assert found["gold"] > 0
    assert "big-downgrade rule:" in result.stdout
    # Beat runs beside the worker: the sweep is what re-queues a message the embedded broker
    # never gives back.
    assert "started the beat" in result.stdout
    assert "beat: Starting" in (var_dir / "demo-beat.log").read_text()
    # The passwords are printed and kept for the next run.
    saved = (var_dir / "demo-credentials.txt").read_text().split()
    assert saved[0] == "moderator" and saved[1] in result.stdout


@pytest.mark.slow
def test_second_run_reuses_the_bundle_and_the_items(var_dir, tiny_bundle):
    if not (var_dir / "moderation.sqlite3").exists():
        run_demo(var_dir, tiny_bundle)
    before = counts(var_dir)
    password = (var_dir / "demo-credentials.txt").read_text().split()[1]

    result = run_demo(var_dir, tiny_bundle)

    after = counts(var_dir)
    assert after["items"] == before["items"]
    assert after["versions"] == before["versions"] == 1
    assert "not importing" in result.stdout
    assert "not training" in result.stdout
    assert (var_dir / "demo-credentials.txt").read_text().split()[1] == password
    assert password in result.stdout
