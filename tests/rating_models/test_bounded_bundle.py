"""A bundle whose suggestion is the bounded-DCM rule: calibrated at training time on
out-of-sample MLP probabilities, kept in the manifest, applied by `predict`, and saved with
its calibration items for a later recalibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rating_models.bundle import Bundle, BundleError
from rating_models.calibration import CALIBRATION_FILE, CalibrationSet
from rating_models.cli import main
from rating_models.config import BundleConfig, ConfigError
from rating_models.risk import BoundedRule
from rating_models.train import train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples
from tests.rating_models.test_cli import write_jsonl


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    config = BundleConfig.from_preset(
        "fast", {**lstm_bundle_config(), "suggested": "bounded", "alpha": 0.1}
    )
    directory = tmp_path_factory.mktemp("bounded") / "bundle"
    bundle = train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return bundle, directory


def test_training_calibrates_the_rule_on_items_the_mlp_did_not_learn_from(bounded):
    bundle, directory = bounded
    rule = bundle.rule
    assert rule.alpha == 0.1 and rule.n == 40  # 32 training items out of fold + 8 validation
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["suggested"] == "bounded"
    assert BoundedRule.from_manifest(manifest["suggestion"]) == rule
    report = manifest["calibration"]["cross_validation"]
    assert set(report) == {"no_floor", "voter_floor"}
    calibration = CalibrationSet.load(directory / CALIBRATION_FILE)
    assert len(calibration) == 40 and calibration.probs.shape == (40, 5)
    assert calibration.alarms.shape == (40,) and calibration.alarms.any()  # half are X
    assert np.allclose(calibration.probs.sum(axis=1), 1.0, atol=1e-4)
    assert set(calibration.ids) == {e.id for e in [*toy_examples(), *toy_examples(1, "v")]}


def test_the_loaded_bundle_suggests_by_the_rule(bounded):
    bundle, directory = bounded
    loaded = Bundle.load(directory)
    assert loaded.rule == bundle.rule
    examples = toy_examples(1, "t")
    prediction = loaded.predict(examples)
    expected = loaded.rule.levels(prediction.mlp_probs, prediction.voter)
    assert np.array_equal(prediction.suggested, expected)
    alarms = prediction.explicit_alarms()
    published = loaded.rule.publishable(prediction.mlp_probs, expected, alarms)
    assert np.array_equal(prediction.auto_publish, published & ~prediction.flagged)


def test_a_bounded_bundle_without_its_rule_is_refused(bounded):
    bundle, _ = bounded
    with pytest.raises(BundleError, match="needs its calibrated rule"):
        Bundle(bundle.experts, bundle.voter, bundle.mlp, "bounded")


@pytest.mark.parametrize("alpha", [0, 1, 1.5, "3%"])
def test_an_alpha_outside_zero_and_one_is_a_clear_error(alpha):
    with pytest.raises(ConfigError, match="alpha: expected a share between 0 and 1"):
        BundleConfig.from_preset("fast", {"alpha": alpha})


def test_recalibrating_makes_a_new_bundle_at_another_alpha_without_training(bounded, tmp_path):
    bundle, directory = bounded
    out = tmp_path / "again"
    assert main(["recalibrate", str(directory), "--alpha", "0.2", "--out", str(out)]) == 0

    again = Bundle.load(out)
    assert again.rule.alpha == 0.2 and again.rule.n == bundle.rule.n
    assert again.version != bundle.version
    assert again.manifest["recalibrated_from"] == bundle.version
    assert again.manifest["test_metrics"] is None  # figures of the old rule do not carry over
    old, new = (json.loads((d / "manifest.json").read_text())["files"] for d in (directory, out))
    assert old["mlp/model.safetensors"] == new["mlp/model.safetensors"]  # nothing retrained
    assert CalibrationSet.load(out / CALIBRATION_FILE).ids == bundle.calibration.ids
    # A looser α never rates more restrictively: its threshold is at least the old one.
    assert again.rule.threshold >= bundle.rule.threshold or again.rule.voter_floor


def test_evaluate_prints_what_each_alpha_costs(bounded, tmp_path, capsys):
    _, directory = bounded
    data = write_jsonl(tmp_path / "test.jsonl", toy_examples(2, "t"))
    assert main(["evaluate", str(directory), str(data)]) == 0
    printed = capsys.readouterr().out
    assert "DCM against over-rating by α" in printed and "10% *" in printed
    assert main(["evaluate", str(directory), str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    chosen = [row for row in report["tradeoff"] if row["chosen"]]
    assert [row["alpha"] for row in chosen] == [0.1]
    assert {"dcm_rate", "over_rating_rate", "severe_dcm_rate"} <= set(chosen[0])


def test_recalibrating_needs_a_bundle_with_calibration_items(tmp_path, capsys):
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    plain = tmp_path / "plain"
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=plain)
    assert main(["recalibrate", str(plain), "--alpha", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "keeps no calibration items" in capsys.readouterr().err
    assert main(["recalibrate", str(plain), "--alpha", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--alpha 3.0: expected a share between 0 and 1" in capsys.readouterr().err


def test_too_few_items_for_the_bounded_suggestion_are_refused_before_any_fitting():
    # 3% needs 33 items in each fit of the rule: with 2 folds, 66 items in all.
    config = BundleConfig.from_preset("fast", {**lstm_bundle_config(), "suggested": "bounded"})
    with pytest.raises(ConfigError, match=r"α = 3\.0% needs at least 66 rated items .*, 40 given"):
        train_bundle(toy_examples(), toy_examples(1, "v"), config=config)
