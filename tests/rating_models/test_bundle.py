import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from rating_models import train as train_module
from rating_models.bundle import Bundle, BundleError
from rating_models.combine.voter import rank_by
from rating_models.examples import Example
from rating_models.ratings import Rating
from rating_models.stacking import OUT_OF_FOLD_FILE, OutOfFold, read_out_of_fold
from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import TINY_LSTM, TINY_MLP, lstm_bundle_config, toy_examples

EXPERTS = ["tag_rules", "lstm", "lstm_tags"]


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
    assert sorted(manifest["voter"]["members"]) == sorted(EXPERTS)
    assert "weakest" in manifest["voter"]["rule"]
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


def test_an_even_voter_is_accepted_and_votes_with_one_expert_on_every_item(saved):
    config = lstm_bundle_config()
    config["voter"] = ["tag_rules", "lstm"]
    assert BundleConfig.from_preset("fast", config).voter == ["tag_rules", "lstm"]
    bundle = saved[0]
    pair = Bundle(bundle.experts, ["lstm", "tag_rules"], bundle.mlp)
    items = [*toy_examples(1, "p"), Example("g", "nude woman on a bed")]  # the last: no tags
    prediction = pair.predict(items)
    # Both speak on tagged items: the weaker (tag_rules, ranked second) sits out.
    assert prediction.voters.tolist() == [1] * len(items)
    np.testing.assert_array_equal(prediction.voter, prediction.experts["lstm"].ratings)


def test_every_predicted_item_has_an_odd_number_of_voters(saved):
    items = [*mixed_examples(), Example("g2", "a dog in the park")]
    prediction = saved[0].predict(items)
    assert prediction.voters.shape == (len(items),)
    assert (prediction.voters % 2 == 1).all()
    tagged = np.array([e.tags is not None for e in items])
    assert (prediction.voters[tagged] == 3).all()  # all three speak on tagged items
    assert (prediction.voters[~tagged] == 1).all()  # the tag experts abstain: lstm alone votes


def test_the_mlp_reads_every_expert_that_spoke_and_was_present_in_training(saved):
    bundle = saved[0]
    assert bundle.mlp.trained == EXPERTS
    prediction = bundle.predict(
        [Example("t", "a cat", tags=(("cat", 0.9),)), Example("g", "a cat")]
    )
    assert prediction.mlp_used.shape == (2, 3)
    assert prediction.mlp_experts(0) == EXPERTS
    assert prediction.mlp_experts(1) == ["lstm"]  # the tag experts abstain without tags
    assert prediction.take([1]).mlp_experts(0) == ["lstm"]


def test_the_manifest_records_each_experts_out_of_fold_scores_and_the_mlps_inputs(saved):
    manifest = json.loads((saved[1] / "manifest.json").read_text())
    stacking = manifest["stacking"]
    assert stacking["folds"] == 2
    assert stacking["reused_from_selection"] == []
    assert stacking["mlp_reads"] == EXPERTS
    assert set(stacking["out_of_fold_scores"]) == set(EXPERTS)
    for scores in stacking["out_of_fold_scores"].values():
        assert scores["n"] == len(toy_examples())  # every training item spoke (all tagged)
        assert 0.0 <= scores["macro_f1"] <= 1.0
    assert manifest["config"]["folds"] == 2
    assert manifest["selection"] is None


def test_the_voter_is_ranked_by_out_of_fold_macro_f1(saved):
    manifest = json.loads((saved[1] / "manifest.json").read_text())
    scores = {n: s["macro_f1"] for n, s in manifest["stacking"]["out_of_fold_scores"].items()}
    assert manifest["voter"]["members"] == rank_by(scores, EXPERTS)
    assert saved[0].voter == manifest["voter"]["members"]
    assert Bundle.load(saved[1]).voter == manifest["voter"]["members"]


def test_the_bundle_keeps_the_out_of_fold_outputs_of_every_training_item(saved):
    bundle, directory = saved
    assert (directory / OUT_OF_FOLD_FILE).is_file()
    assert OUT_OF_FOLD_FILE in bundle.manifest["files"]  # checksummed like the rest
    stored = read_out_of_fold(directory)
    assert stored.ids == [e.id for e in toy_examples()]
    assert set(stored.outputs) == set(EXPERTS)
    for name, out in stored.outputs.items():
        assert out.probs.shape == (len(toy_examples()), 5), name
        np.testing.assert_array_equal(out.abstain, bundle.out_of_fold.outputs[name].abstain)
    assert read_out_of_fold(directory / "absent") is None


def test_training_reuses_given_out_of_fold_outputs_and_computes_only_the_others(saved, monkeypatch):
    stored = saved[0].out_of_fold
    # Outputs of lstm, and of an expert this configuration does not have.
    given = OutOfFold(stored.ids, {"lstm": stored.outputs["lstm"], "ghost": stored.outputs["lstm"]})
    computed = []
    real = train_module.out_of_fold

    def spy(prototype, *args, **kwargs):
        computed.append(prototype.name)
        return real(prototype, *args, **kwargs)

    monkeypatch.setattr(train_module, "out_of_fold", spy)
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    bundle = train_bundle(toy_examples(), toy_examples(1, "v"), config=config, computed=given)
    assert computed == ["tag_rules", "lstm_tags"]  # lstm was not fitted k times again
    assert bundle.manifest["stacking"]["reused_from_selection"] == ["lstm"]
    np.testing.assert_array_equal(
        bundle.out_of_fold.outputs["lstm"].probs, given.outputs["lstm"].probs
    )
    assert set(bundle.experts) == set(EXPERTS)  # every expert is still fitted on all train


def test_given_out_of_fold_outputs_must_cover_every_training_item(saved):
    ids = saved[0].out_of_fold.ids
    partial = OutOfFold(
        ids[1:], {n: o.take(range(1, len(ids))) for n, o in saved[0].out_of_fold.outputs.items()}
    )
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    with pytest.raises(KeyError, match="no out-of-fold output"):
        train_bundle(toy_examples(), toy_examples(1, "v"), config=config, computed=partial)


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


# -- the MLP reads only the experts it was trained with ----------------------------------------


def skin_blob() -> Image.Image:
    """A skin-tone ellipse on a grey background: an image the Open-NSFW network rates."""
    image = Image.new("RGB", (160, 160), (120, 130, 200))
    ImageDraw.Draw(image).ellipse((30, 20, 130, 150), fill=(224, 172, 140))
    return image


@pytest.fixture(scope="module")
def prompt_trained_with_image_expert():
    """Two LSTMs and the image expert (the packaged Open-NSFW network), trained on prompts
    and tags without a single image."""
    config = BundleConfig.from_preset(
        "fast",
        {
            "experts": [
                {"name": "lstm", "kind": "lstm", "config": TINY_LSTM},
                {"name": "lstm_tags", "kind": "lstm", "config": {**TINY_LSTM, "with_tags": True}},
                {"name": "image", "kind": "image", "config": {}},
            ],
            "mlp": TINY_MLP,
            "folds": 2,
            "suggested": "max",
        },
    )
    return train_bundle(toy_examples(), toy_examples(1, "v"), config=config)


def test_an_image_expert_never_present_in_training_is_not_read_by_the_mlp(
    prompt_trained_with_image_expert,
):
    bundle = prompt_trained_with_image_expert
    assert bundle.mlp.trained == ["lstm", "lstm_tags"]
    assert bundle.manifest["stacking"]["mlp_reads"] == ["lstm", "lstm_tags"]
    prompt, tags = "nude woman on a bed", (("nude", 0.9),)
    with_image = Example("i", prompt, tags=tags, image=skin_blob())
    without = Example("i", prompt, tags=tags)
    # One item per batch: rows of one batch may differ in the last bit of a float.
    seen, unseen = bundle.predict([with_image]), bundle.predict([without])
    assert not seen.experts["image"].abstain[0]  # the image expert did speak
    assert seen.experts["image"].features[0].any()
    assert unseen.experts["image"].abstain[0]
    np.testing.assert_array_equal(seen.mlp_probs, unseen.mlp_probs)
    np.testing.assert_array_equal(seen.mlp, unseen.mlp)
    assert not seen.mlp_used[0, list(bundle.experts).index("image")]
    assert seen.mlp_experts(0) == unseen.mlp_experts(0) == ["lstm", "lstm_tags"]
    # The voter does count it: three speak with the image, two without (the weaker sits out).
    assert (seen.voters[0], unseen.voters[0]) == (3, 1)


def test_the_mlp_ignores_whatever_an_untrained_expert_says(prompt_trained_with_image_expert):
    bundle = prompt_trained_with_image_expert
    items = [Example("i", "a cat on a sofa", tags=(("cat", 0.9),))]
    outputs = bundle.predict(items).experts
    loud = dict(outputs)
    image = outputs["image"]
    loud["image"] = type(image)(
        np.eye(5, dtype=np.float32)[[4]],
        np.full_like(image.features, 50.0),
        np.zeros(1, dtype=bool),
    )
    quiet = bundle.predict_from_outputs(items, outputs)
    shouted = bundle.predict_from_outputs(items, loud)
    np.testing.assert_array_equal(quiet.mlp_probs, shouted.mlp_probs)
    np.testing.assert_array_equal(bundle.mlp.inputs(loud), bundle.mlp.inputs(outputs))
