"""The n-gram expert: TF-IDF word and character n-grams with logistic regression."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rating_models.bundle import Bundle
from rating_models.combine.mlp import ExpertSlot, MultimodalMLP
from rating_models.examples import Example
from rating_models.experts import ExpertError, build_expert, load_expert
from rating_models.experts.ngram import MODEL_FILE, NgramConfig, NgramExpert
from rating_models.ratings import NUM_CLASSES, Rating
from tests.rating_models.bundles import toy_examples

PG, R, X = Rating.PG.index, Rating.R.index, Rating.X.index


def make(**settings: object) -> NgramExpert:
    """Toy data repeats every prompt, but min_df=1 keeps even the rare n-grams."""
    return NgramExpert("ngram", NgramConfig(**{"min_df": 1, **settings}))


def three_class_examples(repeat: int = 4, prefix: str = "") -> list[Example]:
    """PG, R and X prompts: a model with three classes and two absent ones (PG13, XXX)."""
    prompts = {
        Rating.PG: ["a cat on a sofa", "a dog in the park"],
        Rating.R: ["bloody fight scene gore", "gore and blood violence"],
        Rating.X: ["nude woman on a bed", "explicit naked man"],
    }
    return [
        Example(f"{prefix}{rating.label}-{n}-{i}", prompt, label=rating)
        for n in range(repeat)
        for rating, texts in prompts.items()
        for i, prompt in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def toy_expert() -> NgramExpert:
    expert = make()
    expert.fit(toy_examples(), toy_examples(1, "v"))
    return expert


@pytest.fixture(scope="module")
def three_class_expert() -> NgramExpert:
    expert = make()
    expert.fit(three_class_examples(), [])
    return expert


def test_it_fits_and_separates_the_toy_data(toy_expert: NgramExpert) -> None:
    test = toy_examples(1, "t")
    output = toy_expert.predict(test)
    assert output.ratings.tolist() == [e.rating.index for e in test]
    assert not output.abstain.any()
    np.testing.assert_allclose(output.probs.sum(axis=1), 1.0, rtol=1e-6)
    assert toy_expert.predict([]).features.shape == (0, NUM_CLASSES)


def test_the_fit_report_counts_items_and_vocabulary_and_scores_val() -> None:
    report = make().fit(toy_examples(), toy_examples(1, "v"))
    assert report["n_train"] == len(toy_examples())
    assert report["vocabulary_size"] > 0
    assert report["val_accuracy"] == 1.0


def test_the_features_are_the_five_decision_scores_of_the_linear_model(
    three_class_expert: NgramExpert,
) -> None:
    items = three_class_examples(1, "t")
    output = three_class_expert.predict(items)
    assert three_class_expert.feature_size == NUM_CLASSES
    assert output.features.shape == (len(items), NUM_CLASSES)
    model = three_class_expert.model
    present = list(model.classes_)
    assert present == [PG, R, X]
    scores = model.decision_function([three_class_expert.text(e) for e in items])
    np.testing.assert_allclose(output.features[:, present], scores, rtol=1e-6)
    absent = [c for c in range(NUM_CLASSES) if c not in present]
    # A class never seen in training scores below every seen one and has no probability.
    assert (output.features[:, absent] < scores.min(axis=1, keepdims=True)).all()
    assert not output.probs[:, absent].any()
    assert output.ratings.tolist() == output.features.argmax(axis=1).tolist()
    assert output.ratings.tolist() == [e.rating.index for e in items]


def test_two_class_training_data_gives_opposite_scores_for_the_two_classes(
    toy_expert: NgramExpert,
) -> None:
    items = toy_examples(1, "t")
    output = toy_expert.predict(items)
    assert list(toy_expert.model.classes_) == [PG, X]
    score = toy_expert.model.decision_function([toy_expert.text(e) for e in items])  # (N,)
    np.testing.assert_allclose(output.features[:, X], score, rtol=1e-6)
    np.testing.assert_allclose(output.features[:, PG], -score, rtol=1e-6)
    others = [Rating.PG13.index, Rating.R.index, Rating.XXX.index]
    assert (output.features[:, others] < output.features[:, [PG, X]].min(axis=1)[:, None]).all()
    assert output.ratings.tolist() == output.features.argmax(axis=1).tolist()


def test_save_and_load_expert_give_identical_outputs(toy_expert: NgramExpert, tmp_path) -> None:
    toy_expert.save(tmp_path / "ngram")
    assert (tmp_path / "ngram" / MODEL_FILE).is_file()
    record = json.loads((tmp_path / "ngram" / "expert.json").read_text())
    assert record["kind"] == "ngram" and record["config"]["min_df"] == 1
    loaded = load_expert(tmp_path / "ngram")
    assert isinstance(loaded, NgramExpert)
    assert loaded.config == toy_expert.config  # spans come back as tuples
    items = [*toy_examples(1, "t"), Example("g", "nude photo at the beach")]
    before, after = toy_expert.predict(items), loaded.predict(items)
    np.testing.assert_array_equal(before.probs, after.probs)
    np.testing.assert_array_equal(before.features, after.features)


def test_a_saved_bundle_reloads_the_ngram_expert_with_identical_outputs(
    toy_expert: NgramExpert, tmp_path
) -> None:
    mlp = MultimodalMLP([ExpertSlot("ngram", "prompt", NUM_CLASSES)])
    bundle = Bundle({"ngram": toy_expert}, ["ngram"], mlp)
    bundle.save(tmp_path / "bundle")
    loaded = Bundle.load(tmp_path / "bundle")
    assert f"experts/ngram/{MODEL_FILE}" in loaded.manifest["files"]  # checksummed
    (record,) = loaded.manifest["experts"]
    assert record["kind"] == "ngram" and record["vocabulary_size"] == toy_expert.vocabulary_size
    items = toy_examples(1, "t")
    before, after = bundle.predict(items), loaded.predict(items)
    np.testing.assert_array_equal(before.experts["ngram"].probs, after.experts["ngram"].probs)
    np.testing.assert_array_equal(before.experts["ngram"].features, after.experts["ngram"].features)


def test_a_negative_prompt_never_changes_its_output(toy_expert: NgramExpert) -> None:
    assert not NgramExpert.reads_negative_prompt
    tags = (("cat", 0.9),)
    plain = [Example("a", "a cat on a sofa", tags=tags), Example("b", "nude woman", tags=tags)]
    negative = [
        Example(e.id, e.prompt, negative_prompt=words, tags=e.tags)
        for e, words in zip(plain, ["nsfw, nude, naked explicit", "a cat, a dog"], strict=True)
    ]
    before, after = toy_expert.predict(plain), toy_expert.predict(negative)
    np.testing.assert_array_equal(before.probs, after.probs)
    np.testing.assert_array_equal(before.features, after.features)
    assert "nsfw" not in toy_expert.text(negative[0])


def test_with_tags_reads_the_tags_only_when_the_item_has_them() -> None:
    tagged = Example("t", "A cat", tags=(("nude", 0.9), ("faint", 0.1)))
    untagged = Example("u", "A cat")
    reader, blind = make(), make(with_tags=False)
    assert "nude" in reader.text(tagged) and "faint" not in reader.text(tagged)  # confidence
    assert reader.text(untagged) == blind.text(untagged) == blind.text(tagged)
    assert "tags" not in reader.text(untagged)


def test_with_tags_learns_from_tags_and_still_rates_untagged_items() -> None:
    # The prompt says nothing; only the tags tell PG from X.
    train = [
        Example(f"{label}-{n}", "an image", tags=((tag, 0.9),), label=label)
        for n in range(6)
        for label, tag in ((Rating.PG, "cat"), (Rating.X, "nude"))
    ]
    reader, blind = make(), make(with_tags=False)
    reader.fit(train, [])
    blind.fit(train, [])
    probe = [
        Example("p", "an image", tags=(("cat", 0.9),)),
        Example("q", "an image", tags=(("nude", 0.9),)),
    ]
    assert reader.predict(probe).ratings.tolist() == [PG, X]
    said = blind.predict(probe)
    np.testing.assert_array_equal(said.probs[0], said.probs[1])  # tags unread
    untagged = reader.predict([Example("u", "an image")])
    assert not untagged.abstain.any()  # the prompt alone is enough to speak


def test_it_is_built_by_kind_and_refuses_bad_settings() -> None:
    expert = build_expert("n", "ngram", {"C": 3.0, "char_ngrams": [3, 4]})
    assert isinstance(expert, NgramExpert)
    assert expert.config.char_ngrams == (3, 4) and expert.modality == "prompt"
    with pytest.raises(ExpertError, match="word_ngrams"):
        NgramConfig(word_ngrams=(2, 1))
    with pytest.raises(ExpertError, match="C must be positive"):
        NgramConfig(C=0)
    with pytest.raises(ExpertError, match="balanced or none"):
        NgramConfig(class_weighting="sqrt")
    with pytest.raises(ExpertError, match="unknown setting"):
        build_expert("n", "ngram", {"ngrams": 3})


def test_it_refuses_to_predict_untrained_and_to_fit_without_ratings() -> None:
    with pytest.raises(ExpertError, match="not trained"):
        make().predict([Example("a", "a cat")])
    with pytest.raises(ExpertError, match="no rated examples"):
        make().fit([Example("a", "a cat")], [])


# -- attributions: each word's and tag's weight toward the rating -----------------------------


def test_attributions_add_up_to_the_score_toward_the_rating(three_class_expert) -> None:
    """Exact for a linear model: the words' weights and the intercepts make the score of the
    rating minus the mean of the others' (every n-gram of a plain prompt touches a word)."""
    item = Example("a", "nude woman on a sofa")
    scores = three_class_expert.model.decision_function([three_class_expert.text(item)])[0]
    classes = list(three_class_expert.model.classes_)
    intercepts = three_class_expert.model.steps[-1][1].intercept_
    for rating in classes:
        own = classes.index(rating)
        toward = scores[own] - np.delete(scores, own).mean()
        bias = intercepts[own] - np.delete(intercepts, own).mean()
        (weights,) = three_class_expert.attributions([item], [rating])
        assert sum(weights.values()) == pytest.approx(toward - bias, abs=1e-6)


def test_the_explicit_word_weighs_most_toward_x(three_class_expert) -> None:
    (weights,) = three_class_expert.attributions([Example("a", "a nude cat on a sofa")], [X])
    top = max(weights, key=weights.get)
    assert (top.kind, top.name) == ("word", "nude")
    assert weights[top] > 0 > min(weights.values())  # the cat and the sofa pull toward PG


def test_attributions_name_tags_by_the_items_own_spelling(toy_expert) -> None:
    item = Example("a", "a photo", tags=(("Nude", 0.9), ("cat", 0.1)))
    (weights,) = toy_expert.attributions([item], [X])
    assert {u.name for u in weights if u.kind == "tag"} == {"Nude"}  # cat: below the threshold
