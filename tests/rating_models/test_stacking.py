"""Out-of-fold stacking: folds, out-of-fold outputs, and what the experts share across fits."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from rating_models.examples import Example
from rating_models.experts import ExpertOutput, build_expert
from rating_models.experts.base import Expert
from rating_models.experts.image import ImageExpert
from rating_models.experts.ngram import NgramConfig, NgramExpert
from rating_models.experts.tag_rules import TagRulesExpert
from rating_models.experts.transformer import TransformerExpert
from rating_models.ratings import NUM_CLASSES, Rating
from rating_models.stacking import (
    OutOfFold,
    assign_folds,
    early_stopping_split,
    out_of_fold,
)
from tests.rating_models.bundles import TINY_LSTM, toy_examples


def labelled(counts: dict[Rating, int]) -> list[Example]:
    return [
        Example(f"{rating.label}-{n}", f"prompt {n}", label=rating)
        for rating, count in counts.items()
        for n in range(count)
    ]


# -- folds -------------------------------------------------------------------------------------


def test_folds_are_a_stratified_partition_that_spreads_every_rare_rating():
    examples = labelled({Rating.PG: 30, Rating.PG13: 9, Rating.X: 3, Rating.XXX: 2})
    folds = assign_folds(examples, 3, seed=7)
    assert folds.shape == (len(examples),)
    assert set(folds.tolist()) == {0, 1, 2}  # every item in exactly one of the k folds
    labels = np.array([e.rating.index for e in examples])
    for rating in (Rating.PG, Rating.PG13, Rating.X):
        per_fold = np.bincount(folds[labels == rating.index], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1, rating  # as even as the count allows
    # A rating with fewer items than folds: each of its items in a different fold.
    assert len(set(folds[labels == Rating.XXX.index].tolist())) == 2


def test_folds_are_seeded():
    examples = labelled({Rating.PG: 20, Rating.X: 10})
    np.testing.assert_array_equal(
        assign_folds(examples, 3, seed=1), assign_folds(examples, 3, seed=1)
    )
    assert not np.array_equal(assign_folds(examples, 3, seed=1), assign_folds(examples, 3, seed=2))


def test_fewer_than_two_folds_are_refused():
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(labelled({Rating.PG: 4}), 1, seed=0)


def test_the_early_stopping_split_holds_out_a_share_of_every_rating_and_keeps_the_rest():
    examples = labelled({Rating.PG: 40, Rating.R: 10, Rating.X: 2, Rating.XXX: 1})
    fitted, held = early_stopping_split(examples, seed=0)
    assert sorted(e.id for e in [*fitted, *held]) == sorted(e.id for e in examples)
    assert not {e.id for e in fitted} & {e.id for e in held}

    def count(items: list[Example], rating: Rating) -> int:
        return sum(e.rating is rating for e in items)

    assert (count(held, Rating.PG), count(held, Rating.R), count(held, Rating.X)) == (4, 1, 1)
    assert count(held, Rating.XXX) == 0 and count(fitted, Rating.XXX) == 1  # never its last


# -- out of fold -------------------------------------------------------------------------------


@dataclass
class SpyConfig:
    pass


class SpyExpert(Expert):
    """Rates every item it was fitted on with its label, any other item PG; logs every fit."""

    kind: ClassVar[str] = "spy"
    modality: ClassVar[str] = "prompt"
    Config: ClassVar[type] = SpyConfig
    fits: ClassVar[list[dict[str, set[str]]]] = []

    def __init__(self, name: str, config: Any | None = None) -> None:
        super().__init__(name, config)
        self.seen: dict[str, int] = {}

    @property
    def feature_size(self) -> int:
        return 2

    def fit(self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False):
        self.seen = {e.id: e.rating.index for e in train}
        self.log = {"train": set(self.seen), "val": {e.id for e in val}, "rated": set()}
        SpyExpert.fits.append(self.log)
        return {}

    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        output = ExpertOutput.empty(len(examples), 2)
        for row, example in enumerate(examples):
            output.probs[row, self.seen.get(example.id, 0)] = 1.0
            self.log["rated"].add(example.id)
        output.abstain[:] = False
        return output

    def _save_state(self, directory: Path) -> None: ...

    def _load_state(self, directory: Path) -> None: ...


@pytest.fixture
def spy() -> SpyExpert:
    SpyExpert.fits.clear()
    return SpyExpert("spy")


def test_each_item_is_rated_by_a_copy_that_never_saw_it(spy):
    examples = toy_examples(3)
    folds = assign_folds(examples, 3, seed=0)
    output = out_of_fold(spy, examples, folds, seed=0)
    assert len(SpyExpert.fits) == 3
    assert spy.seen == {}  # the prototype itself is never fitted
    rated = [log["rated"] for log in SpyExpert.fits]
    for log in SpyExpert.fits:
        assert not log["rated"] & log["train"]
        assert not log["rated"] & log["val"]  # early stopping items come from the other folds
    assert sorted(i for r in rated for i in r) == sorted(e.id for e in examples)  # each once
    for fold, log in enumerate(SpyExpert.fits):
        assert log["rated"] == {e.id for e, f in zip(examples, folds, strict=True) if f == fold}
    # Every copy rates unseen items PG: a leak would show as X.
    assert (output.ratings == Rating.PG.index).all()


def test_given_early_stopping_items_are_the_validation_set_of_every_copy(spy):
    examples, val = toy_examples(2), toy_examples(1, "v")
    out_of_fold(spy, examples, assign_folds(examples, 2, seed=0), early_stopping=val)
    for log in SpyExpert.fits:
        assert log["val"] == {e.id for e in val}
        assert len(log["train"]) + len(log["rated"]) == len(examples)


def random_token_examples(n: int = 120, seed: int = 0) -> list[Example]:
    """Each prompt one random made-up word, each label a coin flip: nothing to learn."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    return [
        Example(f"i{i}", "".join(rng.choice(letters, 8)), label=(Rating.PG, Rating.X)[coin])
        for i, coin in enumerate(rng.integers(0, 2, size=n))
    ]


def test_out_of_fold_outputs_do_not_remember_the_items_they_rate():
    examples = random_token_examples()
    labels = np.array([e.rating.index for e in examples])
    prototype = NgramExpert("ngram", NgramConfig(min_df=1))
    in_sample = prototype.fresh()
    in_sample.fit(examples, [])
    assert (in_sample.predict(examples).ratings == labels).mean() > 0.95  # memorised
    oof = out_of_fold(prototype, examples, assign_folds(examples, 3, seed=0), seed=0)
    assert not oof.abstain.any()
    assert (oof.ratings == labels).mean() < 0.7  # chance: 0.5


def test_an_expert_that_learns_nothing_from_labels_is_just_asked(monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fitted")

    monkeypatch.setattr(TagRulesExpert, "fit", refuse)
    prototype = build_expert("tag_rules", "tag_rules")
    examples = [*toy_examples(2), Example("g", "nude woman", label=Rating.X)]  # no tags
    assert not prototype.learns_from(examples)
    output = out_of_fold(prototype, examples, assign_folds(examples, 2, seed=0))
    expected = prototype.predict(examples)
    np.testing.assert_array_equal(output.probs, expected.probs)
    np.testing.assert_array_equal(output.abstain, expected.abstain)
    assert output.abstain[-1] and not output.abstain[:-1].any()


def test_an_image_expert_below_its_minimum_of_labelled_images_is_just_asked(monkeypatch):
    examples = toy_examples(2)  # no images at all
    expert = ImageExpert("image")
    assert not expert.learns_from(examples)
    monkeypatch.setattr(ImageExpert, "fit", lambda *a, **k: pytest.fail("fitted"))
    output = out_of_fold(expert, examples, assign_folds(examples, 2, seed=0))
    assert output.abstain.all() and output.features.shape == (len(examples), expert.feature_size)


def test_an_image_expert_learns_from_enough_labelled_images():
    from PIL import Image

    image = Image.new("RGB", (8, 8))
    few = build_expert("image", "image", {"min_labelled_images": 3})
    items = [Example(f"i{n}", image=image, label=Rating.PG) for n in range(3)]
    assert few.learns_from(items)
    assert not few.learns_from(items[:2])
    unlabelled = [Example(f"u{n}", image=image) for n in range(3)]
    assert not few.learns_from(unlabelled)


def test_fresh_gives_an_untrained_copy_with_equal_settings():
    prototype = build_expert("lstm", "lstm", TINY_LSTM)
    copy = prototype.fresh()
    assert type(copy) is type(prototype) and copy.name == prototype.name
    assert copy.config == prototype.config and copy.config is not prototype.config


# -- the out-of-fold record --------------------------------------------------------------------


def outputs(n: int, seed: int = 0) -> dict[str, ExpertOutput]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(NUM_CLASSES), size=n).astype(np.float32)
    return {
        "text": ExpertOutput(probs, rng.normal(size=(n, 3)).astype(np.float32), np.zeros(n, bool)),
        "tags": ExpertOutput(
            probs[::-1].copy(), np.zeros((n, 2), np.float32), np.arange(n) % 2 == 0
        ),
    }


def test_out_of_fold_outputs_survive_a_save_and_load(tmp_path):
    record = OutOfFold(["a", "b", "c", "d"], outputs(4))
    path = tmp_path / "deep" / "out_of_fold.npz"
    record.save(path)
    loaded = OutOfFold.load(path)
    assert loaded.ids == record.ids
    assert set(loaded.outputs) == set(record.outputs)
    for name, out in record.outputs.items():
        back = loaded.outputs[name]
        assert back.probs.dtype == np.float32 and back.features.shape == out.features.shape
        # Stored as float16: three significant digits, plenty for a combiner's inputs.
        np.testing.assert_allclose(back.probs, out.probs, atol=1e-3)
        np.testing.assert_allclose(back.features, out.features, rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(back.abstain, out.abstain)
        np.testing.assert_array_equal(back.ratings, out.ratings)


def test_rows_gives_the_outputs_of_the_ids_asked_in_their_order():
    record = OutOfFold(["a", "b", "c", "d"], outputs(4))
    rows = record.rows(["c", "a"])
    for name, out in record.outputs.items():
        np.testing.assert_array_equal(rows[name].probs, out.probs[[2, 0]])
        np.testing.assert_array_equal(rows[name].abstain, out.abstain[[2, 0]])


def test_rows_refuses_an_id_without_an_output():
    record = OutOfFold(["a", "b"], outputs(2))
    with pytest.raises(KeyError, match=r"1 items have no out-of-fold output \(first z\)"):
        record.rows(["a", "z"])


# -- a frozen encoder is shared by every fit ---------------------------------------------------


def test_a_frozen_transformer_encodes_each_text_once_for_all_its_fits(tiny_backbone, monkeypatch):
    examples, val = toy_examples(2), toy_examples(1, "v")
    prototype = build_expert(
        "text",
        "transformer",
        {"backbone": tiny_backbone, "head_hidden": 8, "epochs": 2, "patience": 2, "device": "cpu"},
    )
    encoded: list[int] = []
    real = TransformerExpert._encode

    def counting(self, pairs, **kwargs):
        encoded.append(len(pairs))
        return real(self, pairs, **kwargs)

    monkeypatch.setattr(TransformerExpert, "_encode", counting)
    prototype.prepare([*examples, *val])
    distinct = len({(e.prompt, e.negative_prompt) for e in [*examples, *val]})
    assert encoded == [distinct] and len(prototype._fit_encodings) == distinct

    copy = prototype.fresh()
    assert copy._fit_encodings is prototype._fit_encodings  # one cache
    assert copy._shared is prototype._shared  # one encoder, loaded once
    output = out_of_fold(prototype, examples, assign_folds(examples, 2, seed=0), early_stopping=val)
    assert not output.abstain.any()
    final = prototype.fresh()
    final.fit(examples, val)
    final.predict(val)
    assert encoded == [distinct]  # k + 1 fits and their predictions encoded nothing more
    assert final.model.encoder is prototype._shared[1]


def test_a_fine_tuned_transformer_shares_nothing_with_its_copies():
    prototype = build_expert("text", "transformer", {"mode": "finetune", "backbone": "unused"})
    copy = prototype.fresh()
    assert copy._shared is None and copy._fit_encodings is not prototype._fit_encodings
    prototype.prepare(toy_examples(1))  # a no-op: nothing is loaded or encoded
    assert prototype._shared is None and prototype._fit_encodings == {}
