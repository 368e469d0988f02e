import numpy as np
import pytest

from rating_models.examples import Example
from rating_models.experts import ExpertError, build_expert, load_expert
from rating_models.experts.lstm import END, NEG, START, UNK, WordTokenizer
from rating_models.ratings import Rating

TINY = {
    "embedding_size": 16,
    "hidden_size": 8,
    "epochs": 40,
    "patience": 40,
    "batch_size": 16,
    "lr": 1e-2,
    "min_word_count": 1,
}
SAFE = ["a cat on a sofa", "a dog in the park", "a tree by the river", "a red car at night"]
EXPLICIT = ["nude woman on a bed", "naked man explicit", "explicit nude photo", "nude naked art"]


def toy(repeat: int = 4) -> list[Example]:
    items = []
    for n in range(repeat):
        items += [Example(f"s{n}{i}", p, tags=(), label=Rating.PG) for i, p in enumerate(SAFE)]
        items += [Example(f"x{n}{i}", p, tags=(), label=Rating.X) for i, p in enumerate(EXPLICIT)]
    return items


@pytest.fixture(scope="module")
def trained():
    expert = build_expert("lstm", "lstm", TINY)
    expert.fit(toy(), toy(1), progress=False)
    return expert


def test_tokenizer_wraps_words_in_start_and_end_and_maps_unknown_words():
    tokenizer = WordTokenizer.build(["a cat"], min_count=1, max_size=100)
    ids = tokenizer.encode("A cat zebra", "", max_length=10)
    words = [tokenizer.words[i] for i in ids]
    assert words == [START, "a", "cat", UNK, END]


def test_tokenizer_puts_the_negative_prompt_in_its_own_segment():
    tokenizer = WordTokenizer.build(["a cat nude"], min_count=1, max_size=100)
    words = [tokenizer.words[i] for i in tokenizer.encode("a cat", "nude", max_length=10)]
    assert words == [START, "a", "cat", END, NEG, "nude", END]


def test_tokenizer_truncates_to_max_length():
    tokenizer = WordTokenizer.build(["word"], min_count=1, max_size=100)
    assert len(tokenizer.encode("word " * 500, "word " * 500, max_length=32)) <= 32


def test_vocabulary_comes_from_the_training_items_only():
    expert = build_expert("lstm", "lstm", {**TINY, "epochs": 1})
    val = [
        Example("v1", "zebra giraffe", tags=(), label=Rating.PG),
        Example("v2", "nude zebra", tags=(), label=Rating.X),
    ]
    expert.fit(toy(1), val)
    assert "cat" in expert.tokenizer.ids
    assert "zebra" not in expert.tokenizer.ids


def test_it_learns_a_separable_toy_set(trained):
    output = trained.predict(toy(1))
    expected = np.array([e.rating.index for e in toy(1)])
    assert (output.ratings == expected).mean() == 1.0
    assert output.probs.shape == (8, 5)
    np.testing.assert_allclose(output.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert output.features.shape == (8, trained.feature_size)


def test_negative_prompt_alone_does_not_raise_the_rating(trained):
    plain = Example("p", "a cat on a sofa", tags=())
    negative = Example("n", "a cat on a sofa", negative_prompt="nsfw, nude, naked", tags=())
    ratings = trained.predict([plain, negative]).ratings
    assert ratings[1] <= ratings[0]


def test_with_tags_expert_abstains_without_tags():
    expert = build_expert("lstm_tags", "lstm", {**TINY, "epochs": 1, "with_tags": True})
    expert.fit(toy(1), toy(1))
    output = expert.predict([Example("a", "a cat", tags=None), Example("b", "a cat", tags=())])
    assert output.abstain.tolist() == [True, False]
    assert not output.probs[0].any() and not output.features[0].any()


def test_save_and_load_predict_identically(trained, tmp_path):
    trained.save(tmp_path / "lstm")
    loaded = load_expert(tmp_path / "lstm")
    before, after = trained.predict(toy(1)), loaded.predict(toy(1))
    np.testing.assert_array_equal(before.probs, after.probs)
    np.testing.assert_array_equal(before.features, after.features)


def test_fit_without_rated_items_is_a_clear_error():
    expert = build_expert("lstm", "lstm", TINY)
    with pytest.raises(ExpertError, match="rated"):
        expert.fit([Example("a", "a cat")], [Example("b", "a dog")])


def test_unknown_setting_is_refused():
    with pytest.raises(ExpertError, match="unknown setting"):
        build_expert("lstm", "lstm", {"hiden_size": 3})
