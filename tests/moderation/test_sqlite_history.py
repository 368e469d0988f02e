"""The embedded default (SQLite) protects history as PostgreSQL does, and still resets and
migrates: the decision tests run on SQLite, a flush empties a database full of history, and a
table rebuild keeps the triggers (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run by `manage.py shell` on a migrated SQLite database.
SCRIPT = textwrap.dedent(
    """
    from django.core.management import call_command
    from django.db import IntegrityError, connection, models

    from moderation.media.models import MediaItem
    from moderation.review.decisions import label_create
    from moderation.review.models import Label

    def triggers():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            return sorted(name for (name,) in cursor.fetchall())

    def refused(sql):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        except IntegrityError as error:
            return "append-only" in str(error)
        return False

    before = triggers()
    item = MediaItem.objects.create(prompt="a cat", split="train")
    label_create(item=item, level=2, origin="test")
    assert refused("UPDATE review_label SET level = 16"), "UPDATE of a label went through"
    assert refused("DELETE FROM review_decision"), "DELETE of a decision went through"

    # A migration that alters a column rebuilds the table on SQLite.
    field = models.CharField(max_length=80, default="moderator")
    field.set_attributes_from_name("origin")
    with connection.schema_editor() as editor:
        editor.alter_field(Label, Label._meta.get_field("origin"), field)
    assert triggers() == before, (before, triggers())
    assert refused("UPDATE review_label SET level = 16"), "the rebuild dropped the trigger"
    assert Label.objects.get().level == 2

    call_command("flush", interactive=False, verbosity=0)
    assert not Label.objects.exists() and not MediaItem.objects.exists()
    assert triggers() == before
    assert refused("DELETE FROM review_label") is False  # nothing left to delete
    item = MediaItem.objects.create(prompt="a dog", split="train")
    label_create(item=item, level=2, origin="test")
    assert refused("DELETE FROM review_label"), "the flush left the triggers off"
    print("history-ok", len(before))
    """
)


def test_sqlite_keeps_history_through_a_rebuild_and_resets_with_a_flush(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moderation.settings",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MODERATION_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "memory://",
    }
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [*manage, "shell", "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "history-ok" in done.stdout


def test_the_decision_tests_pass_on_sqlite(tmp_path):
    """The conflict, hold, undo and claim-by-POST tests, on the embedded default's database
    (transactional or not: pytest-django flushes between them where it must)."""
    env = {**os.environ, "TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/moderation/review/test_decisions.py",
            "tests/moderation/review/test_append_only.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
