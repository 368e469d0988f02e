"""A bundle whose suggestion is the bounded-DCM rule: calibrated at training time on
out-of-sample MLP probabilities, kept in the manifest, applied by `predict`, and saved with
its calibration items for a later recalibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rating_models.bundle import Bundle, BundleError
from rating_models.calibration import CALIBRATION_FILE, CalibrationSet
from rating_models.config import BundleConfig, ConfigError
from rating_models.risk import BoundedRule
from rating_models.train import train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


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


def test_a_bounded_bundle_without_its_rule_is_refused(bounded):
    bundle, _ = bounded
    with pytest.raises(BundleError, match="needs its calibrated rule"):
        Bundle(bundle.experts, bundle.voter, bundle.mlp, "bounded")


@pytest.mark.parametrize("alpha", [0, 1, 1.5, "3%"])
def test_an_alpha_outside_zero_and_one_is_a_clear_error(alpha):
    with pytest.raises(ConfigError, match="alpha: expected a share between 0 and 1"):
        BundleConfig.from_preset("fast", {"alpha": alpha})
