import json
import shutil

import numpy as np
import pytest

from rating_models.bundle import Bundle, BundleError
from rating_models.examples import Example
from rating_models.ratings import Rating
from rating_models.train import BundleConfig, ConfigError, train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundles") / "toy"
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    bundle = train_bundle(
        toy_examples(),
        toy_examples(1, "v"),
        config=config,
        out=directory,
        test=toy_examples(1, "t"),
    )
    return bundle, directory


@pytest.fixture
def copy(saved, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(saved[1], target)
    return target


def test_a_saved_bundle_reloads_and_predicts_identically(saved):
    bundle, directory = saved
    loaded = Bundle.load(directory)
    items = toy_examples(1, "p")
    before, after = bundle.predict(items), loaded.predict(items)
    np.testing.assert_array_equal(before.mlp_probs, after.mlp_probs)
    np.testing.assert_array_equal(before.suggested, after.suggested)
    for name in bundle.experts:
        np.testing.assert_array_equal(before.experts[name].features, after.experts[name].features)


def test_manifest_records_versions_experts_voter_fingerprint_and_test_metrics(saved):
    manifest = json.loads((saved[1] / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["package_version"]
    assert [e["kind"] for e in manifest["experts"]] == ["tag_rules", "lstm", "lstm"]
    assert all(e["feature_size"] > 0 for e in manifest["experts"])
    assert manifest["voter"]["members"] == ["tag_rules", "lstm", "lstm_tags"]
    assert len(manifest["training_data"]["fingerprint"]) == 64
    assert manifest["test_metrics"]["n"] == 8
    assert set(manifest["test_metrics"]["models"]) == {
        "tag_rules",
        "lstm",
        "lstm_tags",
        "voter",
        "mlp",
    }


def test_suggested_rating_is_the_more_restrictive_of_voter_and_mlp(saved):
    prediction = saved[0].predict(toy_examples(1, "p"))
    np.testing.assert_array_equal(
        prediction.suggested, np.maximum(prediction.voter, prediction.mlp)
    )


def test_suggestion_policy_can_choose_the_mlp_alone(saved):
    bundle = saved[0]
    mlp_only = Bundle(bundle.experts, bundle.voter, bundle.mlp, "mlp")
    prediction = mlp_only.predict(toy_examples(1, "p"))
    np.testing.assert_array_equal(prediction.suggested, prediction.mlp)


def test_prompt_only_items_are_rated_with_tag_experts_abstaining(saved):
    prediction = saved[0].predict([Example("g", "nude woman on a bed")])  # tags=None
    assert prediction.experts["tag_rules"].abstain[0]
    assert prediction.experts["lstm_tags"].abstain[0]
    assert prediction.suggested[0] >= 0


def test_negative_prompt_alone_raises_no_rating_of_the_bundle(saved):
    bundle = saved[0]
    plain = Example("a", "a cat on a sofa", tags=(("cat", 0.9),))
    negative = Example(
        "b", "a cat on a sofa", negative_prompt="nsfw, nude, naked explicit", tags=(("cat", 0.9),)
    )
    prediction = bundle.predict([plain, negative])
    for model in [*bundle.experts, "voter", "mlp", "suggested"]:
        ratings = prediction.ratings(model)
        assert ratings[1] <= ratings[0], model


def test_an_even_voter_is_refused_when_the_bundle_is_configured():
    config = lstm_bundle_config()
    config["voter"] = ["tag_rules", "lstm"]
    with pytest.raises(ConfigError, match="odd number"):
        BundleConfig.from_preset("fast", config)


def test_an_empty_batch_predicts_nothing(saved):
    prediction = saved[0].predict([])
    assert prediction.suggested.shape == (0,)


def test_load_refuses_a_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="no such directory"):
        Bundle.load(tmp_path / "absent")


def test_load_refuses_a_directory_without_manifest(copy):
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        Bundle.load(copy)


def test_load_refuses_a_corrupt_manifest(copy):
    (copy / "manifest.json").write_text('{"format_version": 1, "experts": [')
    with pytest.raises(BundleError, match="corrupt"):
        Bundle.load(copy)


def test_load_refuses_an_incompatible_format_version(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99 is not supported"):
        Bundle.load(copy)


def test_load_refuses_a_truncated_weights_file(copy):
    weights = copy / "experts" / "lstm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"model\.safetensors is corrupt"):
        Bundle.load(copy)


def test_load_refuses_a_missing_file(copy):
    (copy / "mlp" / "model.safetensors").unlink()
    with pytest.raises(BundleError, match=r"mlp/model\.safetensors is missing"):
        Bundle.load(copy)


def test_load_refuses_a_path_outside_the_bundle(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["experts"][0]["path"] = "../../etc"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.load(copy)


def test_saving_over_an_existing_bundle_replaces_it_whole(saved, tmp_path):
    bundle, _ = saved
    target = tmp_path / "b"
    bundle.save(target)
    (target / "stray").write_text("left over")
    bundle.save(target)
    assert not (target / "stray").exists()
    Bundle.load(target)


def test_blocked_items_are_not_trained_on_as_ratings(tmp_path):
    from rating_models.ratings import BLOCKED

    train = [*toy_examples(), Example("b", "nude woman on a bed", tags=(), label=BLOCKED)]
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    bundle = train_bundle(train, toy_examples(1, "v"), config=config)
    assert bundle.manifest["training_data"]["n_train"] == len(toy_examples())
    assert Rating.X.label in bundle.manifest["training_data"]["class_counts"]


def mixed_examples() -> list[Example]:
    """Toy items, some with a negative prompt, one with no tags."""
    items = toy_examples(1, "o")
    items[1] = Example("n1", "a cat on a sofa", "nsfw, nude, naked explicit", (("cat", 0.9),))
    items[5] = Example("n2", "nude woman on a bed", "blurry", (("nude", 0.9),))
    items[6] = Example("g", "explicit nude photo")
    return items


def test_predicting_from_the_experts_outputs_says_what_predict_says(saved):
    bundle = saved[0]
    items = mixed_examples()
    predicted = bundle.predict(items)
    combined = bundle.predict_from_outputs(items, predicted.experts)
    for part in ("voter", "mlp_probs", "mlp", "suggested"):
        np.testing.assert_array_equal(getattr(combined, part), getattr(predicted, part), part)


def test_an_evaluation_from_the_experts_outputs_reports_what_predicting_reports(saved):
    from rating_models.evaluation import evaluate_bundle

    bundle = saved[0]
    items = [*mixed_examples(), Example("u", "a dog in the park")]  # unlabelled: left out
    outputs = bundle.predict(items).experts
    assert evaluate_bundle(bundle, items, outputs=outputs, bootstrap=20) == evaluate_bundle(
        bundle, items, bootstrap=20
    )
