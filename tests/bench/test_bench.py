"""The benchmarks' shared harness, and bench/queue.py run end to end at a tiny size.

BENCHMARKS.md is written from what the scripts under bench/ print and save; these tests keep
the scripts running and their results in the format it reads. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_record():
    spec = importlib.util.spec_from_file_location("bench_record", ROOT / "bench" / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_sizes_write_beside_the_default_sizes_never_over_them():
    record = bench_record()
    parser = record.parser("a benchmark")

    assert parser.parse_args([]).out == ROOT / "bench" / "results"
    assert parser.parse_args(["--full"]).out == ROOT / "bench" / "results" / "full"
    assert parser.parse_args(["--full", "--out", "/tmp/x"]).out == Path("/tmp/x")


def test_results_name_their_files_from_the_project_root():
    record = bench_record()

    assert record.relative(ROOT / "bench" / "results" / "full" / "queue_explain.txt") == (
        "bench/results/full/queue_explain.txt"
    )
    assert record.relative(Path("/elsewhere/queue.json")) == "/elsewhere/queue.json"


@pytest.mark.slow
def test_the_queue_benchmark_measures_both_claims_and_finds_no_double_claim(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    command = [
        sys.executable,
        "bench/queue.py",
        "--items=300",
        "--moderators=4",
        "--seconds=1",
        "--pace-ms=50",
        f"--database=bench_queue_test_{os.getpid()}",
        f"--out={tmp_path}",
    ]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]

    result = json.loads((tmp_path / "queue.json").read_text())
    assert set(result) == {"name", "machine", "date", "size", "figures", "baseline", "ratio"}
    assert result["name"] == "queue" and result["size"]["items"] == 300
    assert result["ratio"] > 0
    for claims in (result["figures"], result["baseline"]):
        for pace in ("flat_out", "paced"):
            phase = claims[pace]
            assert phase["decisions"] > 0
            assert phase["claim_ms"]["p50"] <= phase["claim_ms"]["p95"] <= phase["claim_ms"]["p99"]
            signs = ("double_claims", "overlapping_holds", "items_labelled_twice")
            assert [phase[sign] for sign in signs] == [0, 0, 0]
    assert result["figures"]["plan"]["scan"].startswith("Index Scan using review_queue_open")
    assert result["figures"]["explain"] == str(tmp_path / "queue_explain.txt")
    assert "review_queue_open" in (tmp_path / "queue_explain.txt").read_text()


@pytest.mark.slow
def test_the_finetune_benchmark_times_an_epoch_beside_the_frozen_fit(tmp_path):
    command = [sys.executable, "bench/finetune.py", "--items=40", f"--out={tmp_path}"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]

    result = json.loads((tmp_path / "finetune.json").read_text())
    assert result["name"] == "finetune" and result["size"]["train_items"] == 40
    assert result["figures"]["finetune_epoch_s"] > 0 and result["baseline"]["frozen_fit_s"] > 0
    expected = result["baseline"]["frozen_fit_s"] / result["figures"]["finetune_epoch_s"]
    assert result["ratio"] == pytest.approx(expected, rel=0.1)  # figures rounded to 0.1 s
