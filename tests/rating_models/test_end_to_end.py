"""Train a tiny bundle from a slice of the real corpus, save, reload, predict identically."""

from pathlib import Path

import numpy as np
import pytest

from rating_models.bundle import Bundle
from rating_models.examples import Example, load_examples
from rating_models.ratings import Rating
from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import transformer_bundle_config

CORPUS = Path(__file__).resolve().parents[2] / "data" / "ratings"


def corpus_slice(split: str, per_class: int) -> list:
    """Up to `per_class` items of each rating, in file order: every class is represented."""
    taken: dict[Rating, int] = {}
    items = []
    for example in load_examples(CORPUS / f"{split}.jsonl"):
        if taken.get(example.rating, 0) < per_class:
            taken[example.rating] = taken.get(example.rating, 0) + 1
            items.append(example)
    return items


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_backbone):
    directory = tmp_path_factory.mktemp("e2e") / "bundle"
    # fp32 torch, the runtime the experts train in: reloading must change nothing at all.
    config = BundleConfig.from_preset("fast", transformer_bundle_config(tiny_backbone, "torch"))
    test = corpus_slice("test", 8)
    bundle = train_bundle(
        corpus_slice("train", 30), corpus_slice("val", 10), config=config, out=directory, test=test
    )
    return bundle, directory, test


def test_a_bundle_trained_on_real_data_reloads_and_predicts_identically(trained):
    bundle, directory, test = trained
    loaded = Bundle.load(directory)
    before, after = bundle.predict(test), loaded.predict(test)
    np.testing.assert_array_equal(before.suggested, after.suggested)
    np.testing.assert_array_equal(before.voter, after.voter)
    np.testing.assert_allclose(before.mlp_probs, after.mlp_probs, rtol=1e-6, atol=1e-7)
    for name in bundle.experts:
        np.testing.assert_allclose(
            before.experts[name].probs, after.experts[name].probs, rtol=1e-6, atol=1e-7
        )


def test_the_default_runtime_rates_as_the_fp32_model_does(trained):
    bundle, directory, test = trained
    fp32, auto = bundle.predict(test), Bundle.load(directory, runtime="auto").predict(test)
    np.testing.assert_array_equal(auto.suggested, fp32.suggested)
    for name in ("text", "text_tags"):
        np.testing.assert_array_equal(auto.experts[name].ratings, fp32.experts[name].ratings)
        np.testing.assert_allclose(auto.experts[name].probs, fp32.experts[name].probs, atol=0.01)


def test_every_expert_speaks_on_corpus_items_except_the_image_expert(trained):
    bundle, _, test = trained
    prediction = bundle.predict(test)
    assert prediction.experts["image"].abstain.all()  # the corpus is prompt-only
    for name in ("tag_rules", "lstm", "text", "text_tags"):
        assert not prediction.experts[name].abstain.any(), name
    assert set(prediction.suggested.tolist()) <= {0, 1, 2, 3, 4}


def test_manifest_names_each_experts_kind_backbone_and_feature_size(trained):
    _, directory, _ = trained
    manifest = Bundle.load(directory).manifest
    text = next(e for e in manifest["experts"] if e["name"] == "text")
    assert text["kind"] == "transformer"
    assert text["backbone"]
    assert text["feature_size"] == 16
    image = next(e for e in manifest["experts"] if e["name"] == "image")
    assert image["feature_size"] == 1024
    assert manifest["test_metrics"]["models"]["image"]["n"] == 0


def test_negative_prompt_alone_raises_no_experts_rating(trained):
    bundle, _, test = trained
    items = [e for e in test if e.rating is not None][:12]
    with_negative = [
        Example(f"{e.id}-neg", e.prompt, negative_prompt="nsfw, nude, naked, sex", tags=e.tags)
        for e in items
    ]
    plain = [Example(e.id, e.prompt, tags=e.tags) for e in items]
    before, after = bundle.predict(plain), bundle.predict(with_negative)
    for model in [*bundle.experts, "voter", "mlp", "suggested"]:
        assert (after.ratings(model) <= before.ratings(model)).all(), model


@pytest.mark.slow
def test_the_fast_preset_trains_with_the_packaged_weights(tmp_path):
    """The real MiniLM and Open-NSFW weights, the real preset, a small slice of the corpus."""
    bundle = train_bundle(
        corpus_slice("train", 25),
        corpus_slice("val", 8),
        config=BundleConfig.from_preset("fast", {"alpha": 0.2}),  # 33 items cannot bound 3%
        out=tmp_path / "b",
    )
    manifest = Bundle.load(tmp_path / "b").manifest
    text = next(e for e in manifest["experts"] if e["name"] == "text")
    assert text["backbone"] == "minilm" and text["feature_size"] == 256
    prediction = bundle.predict([Example("g", "a nude woman lying on a bed")])
    assert prediction.suggested.shape == (1,)
