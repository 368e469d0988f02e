"""bench/learning_curve.py: its nested stratified subsets, its paired gains, and the script end
to end at its tiny size (two cheap experts, 300 training items). No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rating_models.examples import Example
from rating_models.metrics import rating_report
from rating_models.ratings import Rating

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def learning_curve(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # it imports bench/record.py as `record`
    spec = importlib.util.spec_from_file_location(
        "bench_learning_curve", ROOT / "bench" / "learning_curve.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def examples(counts: dict[str, int]) -> list[Example]:
    items = [(label, k) for label, n in counts.items() for k in range(n)]
    return [Example(id=f"{label}-{k}", prompt="a", label=Rating[label]) for label, k in items]


def test_smaller_shares_are_stratified_subsets_of_larger_ones(learning_curve):
    items = examples({"PG": 400, "PG13": 80, "R": 30, "X": 3, "XXX": 2})

    subsets = learning_curve.nested_shares(items, [0.1, 0.25, 0.5, 1.0], seed=7)

    assert subsets[1.0] == items
    for small, large in ((0.1, 0.25), (0.25, 0.5), (0.5, 1.0)):
        assert {e.id for e in subsets[small]} < {e.id for e in subsets[large]}
    counts = Counter(e.rating.label for e in subsets[0.1])
    assert counts == {"PG": 40, "PG13": 8, "R": 3, "X": 1, "XXX": 1}  # every rating kept
    # The same seed draws the same items; another seed others.
    again = learning_curve.nested_shares(items, [0.1], seed=7)[0.1]
    assert again == subsets[0.1]
    assert learning_curve.nested_shares(items, [0.1], seed=8)[0.1] != subsets[0.1]


def test_paired_gain_is_the_change_in_macro_f1_and_dcm_rate(learning_curve):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=300)
    before = np.where(rng.random(300) < 0.5, y, rng.integers(0, 5, size=300))
    after = np.where(rng.random(300) < 0.8, y, rng.integers(0, 5, size=300))

    gain = learning_curve.paired_gain(y, before, after, samples=200)

    a, b = rating_report(y, before), rating_report(y, after)
    assert gain["macro_f1"][0] == pytest.approx(b["macro_f1"] - a["macro_f1"], abs=1e-4)
    assert gain["dcm_rate"][0] == pytest.approx(b["dcm_rate"] - a["dcm_rate"], abs=1e-4)
    for point, low, high in gain.values():
        assert low <= point <= high
    assert gain["macro_f1"][1] > 0  # 50% -> 80% right: a gain beyond its interval
    assert learning_curve.paired_gain(y, before, before, samples=50)["dcm_rate"] == [0, 0, 0]


@pytest.mark.slow
def test_the_learning_curve_trains_a_bundle_per_share_beside_the_ngram_baseline(tmp_path):
    chart = tmp_path / "curve.svg"
    command = [sys.executable, "bench/learning_curve.py", "--tiny", f"--out={tmp_path}"]
    command.append(f"--chart={chart}")
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "suggested vs n-gram" in run.stdout

    result = json.loads((tmp_path / "learning_curve.json").read_text())
    assert set(result) == {"name", "machine", "date", "size", "figures", "baseline", "ratio"}
    assert result["name"] == "learning_curve" and result["size"]["size"] == "tiny"
    points = result["figures"]["points"]
    assert [p["share"] for p in points] == [0.5, 1.0]
    assert points[0]["n_train"] < points[1]["n_train"] == result["size"]["train_pool"] == 300
    for point, baseline in zip(points, result["baseline"]["points"], strict=True):
        assert set(point["models"]) == {"voter", "mlp", "suggested"}
        assert baseline["n_train"] == point["n_train"]
        for figures in (*point["models"].values(), baseline["ngram"]):
            assert figures["n"] == result["size"]["test"]
            assert 0 <= figures["macro_f1"] <= 1 and 0 <= figures["dcm_rate"] <= 1
        automation = point["automation"]
        assert 0 <= automation["share"] <= 1 and automation["published"] >= 0
        assert point["rule"]["alpha"] == 0.03
    (gain,) = result["figures"]["gains"]
    assert (gain["from"], gain["to"]) == (0.5, 1.0)
    assert set(gain["models"]) == {"ngram", "voter", "mlp", "suggested"}
    assert result["ratio"] > 0
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") >= 6 and "α = 3%" in svg

    again = tmp_path / "again.svg"
    command = [
        sys.executable,
        "bench/learning_curve.py",
        f"--replot={tmp_path}/learning_curve.json",
    ]
    command.append(f"--chart={again}")
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert again.read_text() == svg  # the chart drawn again from the recorded figures
