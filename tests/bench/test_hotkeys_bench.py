"""bench/hotkeys.py end to end at a tiny size: the baseline (HEAD, in a git worktree) and the
working tree, each served with its own database, pressed in Debian's Chromium. No timing is
asserted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_hotkeys_benchmark_times_both_checkouts_and_cleans_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    command = [sys.executable, "bench/hotkeys.py", "--quick", "--baseline-ref=HEAD"]
    command.append(f"--out={tmp_path}")
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "working tree / baseline: median" in run.stdout

    result = json.loads((tmp_path / "hotkeys.json").read_text())
    assert set(result) == {"name", "machine", "date", "size", "figures", "baseline", "ratio"}
    assert result["name"] == "hotkeys" and result["ratio"] > 0
    size = result["size"]
    for side in (result["figures"], result["baseline"]):
        assert side["presses"] == size["rounds"] * size["presses_per_round"]
        assert len(side["round_medians_ms"]) == size["rounds"]
        ms = side["next_item_ms"]
        assert 0 < ms["p50"] <= ms["p95"] <= ms["p99"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert result["baseline"]["commit"] == head.stdout.strip()
    assert result["figures"]["median_over_baseline"] == pytest.approx(1 / result["ratio"], 0.01)
    # The baseline's worktree is gone again.
    worktree = re.search(r"baseline: (\S+hotkeys-baseline-\d+),", run.stdout).group(1)
    listed = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True)
    assert worktree not in listed.stdout and not Path(worktree).exists()
