"""No double claims, no lost labels: moderators racing over one queue (issue 7).

Twenty moderators, each a thread with its own PostgreSQL connection, claim, skip, let claims
expire and decide until a queue of 2,000 items is empty; then every item has exactly one label,
the labels are exactly the decisions made, and no item was held by two moderators at once. The
same race runs on SQLite (the embedded default, where row locks do nothing and the claim is a
conditional update) in a subprocess, at lower concurrency. The race itself is in `race.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.moderation.review.race import race

ROOT = Path(__file__).resolve().parents[3]


def assert_sound(summary: dict, *, items: int, moderators: int) -> None:
    assert summary["errors"] == []
    # label_create refusing ("another moderator holds this item") a claim the thread held
    # means someone else had claimed it too.
    assert summary["refused"] == []
    assert summary["finished_threads"] == moderators
    assert summary["overlapping_claims"] == 0
    assert summary["not_done"] == 0
    assert summary["labelled_items"] == items
    assert summary["items_with_several_labels"] == 0
    assert summary["decisions"] == summary["labels"] == summary["decided_items"] == items
    # The race exercised what it claims to: skips and expiries came back to others.
    assert summary["skips"] > 0 and summary["expiries"] > 0
    assert summary["claims"] == items + summary["skips"] + summary["expiries"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_twenty_moderators_on_postgresql_never_double_claim_or_lose_a_label():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the suite's database is not PostgreSQL; the SQLite race runs below")
    summary = race(items=2000, moderators=20)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("refused", "errors")}))
    assert_sound(summary, items=2000, moderators=20)


@pytest.mark.slow
def test_four_moderators_on_the_embedded_sqlite_default_never_double_claim(tmp_path):
    # The embedded default's own settings (SQLite with its lock timeout and immediate
    # transactions), not the test settings: that is the configuration that must not corrupt.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moderation.settings",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MODERATION_VAR_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.moderation.review.race", "300", "4"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in summary.items() if k not in ("refused", "errors")}))
    assert_sound(summary, items=300, moderators=4)
