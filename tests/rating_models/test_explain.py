"""Explanations: a word planted to make items X comes out on top, for the n-gram expert and a
tiny transformer; tag rules name the tag that set the level; occlusion keeps to its budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rating_models.bundle import Bundle, BundlePrediction
from rating_models.combine.mlp import ExpertSlot, MultimodalMLP
from rating_models.examples import Example
from rating_models.experts import build_expert
from rating_models.explain import explain
from rating_models.ratings import Rating

PLANTED = "nude"
# Words the tiny backbone's vocabulary knows (see `tiny_backbone`), none of them explicit.
FILLER = [
    "cat", "dog", "tree", "park", "garden", "river", "sunset", "castle", "clouds", "city",
    "rain", "car", "street", "night", "fruit", "table", "horse", "moon", "portrait",
    "painting", "landscape", "detailed", "mountains", "astronaut",
]  # fmt: skip


def planted_examples(count: int, *, seed: int) -> list[Example]:
    """Five filler words each; every other item has the planted word somewhere among them,
    and only those are X."""
    rng = np.random.default_rng(seed)
    examples = []
    for n in range(count):
        words = list(rng.choice(FILLER, size=5, replace=False))
        explicit = n % 2 == 1
        if explicit:
            words.insert(int(rng.integers(0, len(words) + 1)), PLANTED)
        examples.append(
            Example(
                id=f"{seed}-{n}",
                prompt=", ".join(words),
                tags=(("cat", 0.9),),
                label=Rating.X if explicit else Rating.PG,
            )
        )
    return examples


@pytest.fixture(scope="module")
def bundle(tiny_backbone: str) -> Bundle:
    """Tag rules, the n-gram expert and a tiny frozen transformer, each fitted once on planted
    items; the MLP stays untrained (explanations never read it but to order items)."""
    train, val = planted_examples(120, seed=1), planted_examples(40, seed=2)
    tiny = {"backbone": tiny_backbone, "device": "cpu", "head_hidden": 16, "lr": 1e-2}
    experts = {
        "tag_rules": build_expert("tag_rules", "tag_rules"),
        "ngram": build_expert("ngram", "ngram"),
        "text": build_expert("text", "transformer", {**tiny, "epochs": 30, "patience": 30}),
    }
    for expert in experts.values():
        expert.fit(train, val)
    slots = [ExpertSlot(name, e.modality, e.feature_size) for name, e in experts.items()]
    return Bundle(experts, list(experts), MultimodalMLP(slots))


@pytest.fixture(scope="module")
def explicit_items() -> list[Example]:
    return [e for e in planted_examples(16, seed=3) if e.rating == Rating.X]


@pytest.fixture(scope="module")
def prediction(bundle: Bundle, explicit_items: list[Example]) -> BundlePrediction:
    return bundle.predict(explicit_items)


@pytest.mark.parametrize("expert", ["ngram", "text"])
def test_the_planted_word_is_the_top_attribution(bundle, explicit_items, prediction, expert):
    assert (prediction.experts[expert].ratings == Rating.X.index).all()  # it learned the word

    explanations = explain(bundle, explicit_items, prediction)
    for item, explanation in zip(explicit_items, explanations, strict=True):
        said = explanation["experts"][expert]
        assert said["rating"] == Rating.X.level
        top = said["top"][0]
        assert top["word"] == PLANTED
        assert top["weight"] > 0
        # The spans point at the word in the raw prompt, for the page to highlight.
        assert [item.prompt[a:b] for a, b in top["spans"]] == [PLANTED]


def test_explanations_are_json_and_say_how_each_expert_was_explained(
    bundle, explicit_items, prediction
):
    explanations = explain(bundle, explicit_items, prediction)

    assert json.loads(json.dumps(explanations)) == explanations
    methods = {name: said["method"] for name, said in explanations[0]["experts"].items()}
    assert methods == {"tag_rules": "rules", "ngram": "linear", "text": "occlusion"}
    assert all(len(said["top"]) <= 8 for e in explanations for said in e["experts"].values())
    assert not any(e["partial"] for e in explanations)


def test_tag_rules_name_the_tag_that_set_the_level(bundle):
    item = Example("tagged", "a portrait", tags=(("cat", 0.9), ("completely_nude", 0.8)))
    prediction = bundle.predict([item])

    (explanation,) = explain(bundle, [item], prediction, budget_seconds=0)

    said = explanation["experts"]["tag_rules"]
    assert said["rating"] == Rating.X.level
    assert said["top"] == [{"tag": "completely_nude", "weight": 8.0, "via": "nudity"}]


def test_with_no_budget_left_only_the_cheap_explanations_are_made(
    bundle, explicit_items, prediction
):
    explanations = explain(bundle, explicit_items, prediction, budget_seconds=0)

    for explanation in explanations:
        assert explanation["partial"] is True
        assert explanation["skipped"] == ["text"]
        assert set(explanation["experts"]) == {"tag_rules", "ngram"}


def test_occlusion_runs_only_on_the_items_a_moderator_will_see(bundle, explicit_items, prediction):
    queued = np.zeros(len(explicit_items), dtype=bool)
    queued[1] = True

    explanations = explain(bundle, explicit_items, prediction, queued=queued)

    assert [e["partial"] for e in explanations] == [row != 1 for row in range(len(queued))]
    assert "text" in explanations[1]["experts"]
