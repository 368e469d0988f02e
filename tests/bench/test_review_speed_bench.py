"""bench/review_speed.py end to end at a tiny size: one round of single-item review and of grid
review, each on a fresh queue, by a scripted moderator in Debian's Chromium. No timing is
asserted: only that both sessions decided every item, once, and how the results read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_review_speed_benchmark_decides_every_item_in_both_modes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    command = [sys.executable, "bench/review_speed.py", "--quick", f"--out={tmp_path}"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "single / grid per decision: time" in run.stdout

    result = json.loads((tmp_path / "review_speed.json").read_text())
    assert set(result) == {"name", "machine", "date", "size", "figures", "baseline", "ratio"}
    assert result["name"] == "review_speed" and result["ratio"] > 0
    items, rounds = result["size"]["items_per_session"], result["size"]["rounds"]
    grid, single = result["figures"], result["baseline"]
    for mode in (grid, single):
        assert mode["decided"] == items * rounds
        assert len(mode["round_ms_per_decision"]) == rounds
        assert mode["ms_per_decision"] > 0 and mode["round_trips_per_decision"] > 0
    # Single review: one Enter and one decide request per item, one click to open the page.
    assert single["keystrokes"] == items * rounds and single["clicks"] == rounds
    assert single["round_trips_by_kind"]["POST /review/<uid>/decide/"] == items * rounds
    # The grid leaves the warned items (and the blind double-review share) to single review.
    only = grid["grid_only"]
    assert 0 < only["decided"] < items * rounds
    # Every warned item not chosen for double review is shown (at least once), left unconfirmed.
    warned = round(items * result["size"]["warned_share"])
    grid_sessions = [c for source, c in grid["database"].items() if source.endswith("-grid")]
    for_grid = sum(c["warned_for_grid"] for c in grid_sessions)
    assert for_grid <= warned * rounds
    assert only["warned_cards_shown"] >= for_grid
    assert grid["actions_per_decision"] < single["actions_per_decision"]
    # And the database agrees: every item of every session decided once, none left open.
    assert len(grid["database"]) == 2 * rounds
    for counts in grid["database"].values():
        assert counts["decided_items"] == counts["decisions"] == items
        assert counts["open"] == 0
