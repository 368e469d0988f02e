"""Model selection by cross-validation over train + val, on toy data with tiny experts."""

from __future__ import annotations

import pytest

from rating_models import selection
from rating_models.config import BundleConfig, ConfigError
from rating_models.examples import fingerprint
from rating_models.selection import GRID, MLP_WEIGHTINGS, POLICIES, _pick, select
from tests.rating_models.bundles import TINY_LSTM, TINY_MLP, toy_examples

NGRAM = {"name": "ngram", "kind": "ngram", "config": {"min_df": 1}}


def tiny_config(**overrides: object) -> BundleConfig:
    return BundleConfig.from_preset(
        "fast",
        {
            "experts": [
                {"name": "tag_rules", "kind": "tag_rules", "config": {}},
                {"name": "lstm", "kind": "lstm", "config": TINY_LSTM},
                NGRAM,
            ],
            "mlp": TINY_MLP,
            "folds": 2,
            "suggested": "max",
            **overrides,
        },
    )


@pytest.fixture(scope="module")
def selected():
    train, val = toy_examples(), toy_examples(1, "v")
    chosen, outputs, prototypes = select(train, val, config=tiny_config(), bootstrap=20)
    return train, val, chosen, outputs, prototypes


def test_selection_returns_a_valid_configuration_of_the_same_experts(selected):
    *_, chosen, _, _ = selected
    assert isinstance(chosen, BundleConfig)
    chosen.validate()
    assert [e["name"] for e in chosen.experts] == ["tag_rules", "lstm", "ngram"]
    assert (chosen.folds, chosen.seed, chosen.min_image_labels) == (2, 1234, 50)
    ngram = chosen.experts[2]["config"]
    assert ngram["min_df"] == 1  # the given settings stay; the grid adds its own
    assert {"C": ngram["C"]} in GRID["ngram"]
    assert chosen.mlp["hidden_size"] == TINY_MLP["hidden_size"]


def test_the_log_holds_every_candidate_with_its_figures(selected):
    train, val, chosen, _, _ = selected
    log = chosen.selection
    assert log["data"] == {"fingerprint": fingerprint([*train, *val]), "n": len(train) + len(val)}
    assert "2-fold" in log["method"] and log["rule"]

    def has_figures(figures: dict) -> None:
        assert 0.0 <= figures["macro_f1"] <= 1.0 and 0.0 <= figures["dcm_rate"] <= 1.0
        assert "/" in figures["severe_dcm"]
        assert len(figures["intervals"]["macro_f1"]) == 2  # bootstrap=20

    assert log["baseline"]["expert"] == "ngram"
    has_figures(log["baseline"])
    assert set(log["experts"]) == {"tag_rules", "lstm", "ngram"}
    for name, trials in log["experts"].items():
        assert sum(t["chosen"] for t in trials) == 1, name
        for trial in trials:
            has_figures(trial)
    assert [t["config"]["C"] for t in log["experts"]["ngram"]] == [g["C"] for g in GRID["ngram"]]
    assert set(log["expert_scores"]) == {"tag_rules", "lstm", "ngram"}
    for choice, names in (("mlp", MLP_WEIGHTINGS), ("suggested", POLICIES)):
        assert set(log[choice]["candidates"]) == set(names), choice
    assert set(log["voter"]["candidates"]) == set(log["voter"]["panels"])
    for choice in ("mlp", "voter", "suggested"):
        for figures in log[choice]["candidates"].values():
            has_figures(figures)
    assert log["chosen_experts"] == chosen.experts


def test_the_chosen_values_are_among_the_candidates_and_in_the_configuration(selected):
    *_, chosen, _, _ = selected
    log = chosen.selection
    assert log["mlp"]["chosen"] in log["mlp"]["candidates"]
    assert chosen.mlp["class_weighting"] == log["mlp"]["chosen"]
    assert log["voter"]["chosen"] in log["voter"]["candidates"]
    assert chosen.voter == log["voter"]["panels"][log["voter"]["chosen"]]
    assert sorted(log["voter"]["panels"]["all"]) == ["lstm", "ngram", "tag_rules"]
    assert chosen.suggested == log["suggested"]["chosen"] in POLICIES
    ngram = next(t for t in log["experts"]["ngram"] if t["chosen"])
    assert ngram["config"] == chosen.experts[2]["config"]


def test_the_out_of_fold_outputs_cover_train_and_val_for_each_chosen_expert(selected):
    train, val, chosen, outputs, prototypes = selected
    assert outputs.ids == [e.id for e in [*train, *val]]
    assert set(outputs.outputs) == {"tag_rules", "lstm", "ngram"}
    for out in outputs.outputs.values():
        assert out.probs.shape == (len(train) + len(val), 5)
    assert set(prototypes) == {"tag_rules", "lstm", "ngram"}
    assert prototypes["ngram"].model is None  # untrained: train_bundle fits fresh copies
    tried = prototypes["ngram"].config
    assert chosen.experts[2]["config"]["C"] == tried.C


@pytest.mark.parametrize(
    "experts",
    [
        [{"name": "tag_rules", "kind": "tag_rules"}],
        [{"name": "tag_rules", "kind": "tag_rules"}, {"name": "tfidf", "kind": "ngram"}],
        [{"name": "ngram", "kind": "lstm", "config": TINY_LSTM}],
    ],
    ids=["no ngram", "ngram under another name", "another kind named ngram"],
)
def test_selection_refuses_a_configuration_without_the_ngram_baseline_before_fitting(
    experts, monkeypatch
):
    monkeypatch.setattr(selection, "out_of_fold", lambda *a, **k: pytest.fail("fitted"))
    config = BundleConfig.from_preset("fast", {"experts": experts, "folds": 2})
    with pytest.raises(ConfigError, match="'ngram' expert"):
        select(toy_examples(), toy_examples(1, "v"), config=config, bootstrap=0)


def test_selection_refuses_fewer_than_two_items_per_fold():
    with pytest.raises(ConfigError, match="at least 4 rated examples"):
        select(toy_examples(1)[:2], toy_examples(1, "v")[:1], config=tiny_config(), bootstrap=0)


# -- the rule ----------------------------------------------------------------------------------


def figures(macro_f1: float, dcm_rate: float) -> dict[str, float]:
    return {"macro_f1": macro_f1, "dcm_rate": dcm_rate}


def test_the_rule_takes_the_best_macro_f1_under_the_dcm_bound():
    candidates = {
        "a": figures(0.9, 0.10),  # best macro-F1, but too many DCMs
        "b": figures(0.7, 0.04),
        "c": figures(0.8, 0.05),
    }
    assert _pick(candidates, below=0.06) == "c"
    assert _pick(candidates, below=0.05) == "b"  # strictly below
    assert _pick(candidates, below=0.05, inclusive=True) == "c"


def test_where_nothing_is_under_the_bound_the_lowest_dcm_rate_wins():
    candidates = {"a": figures(0.9, 0.10), "b": figures(0.6, 0.08), "c": figures(0.7, 0.08)}
    assert _pick(candidates, below=0.0) == "c"  # tied on DCM: the better macro-F1


def test_a_bounded_suggestion_is_kept_and_its_mlp_weighting_chosen_by_its_held_out_cost():
    train, val = toy_examples(), toy_examples(1, "v")
    config = tiny_config(suggested="bounded", alpha=0.2)
    chosen, _, _ = select(train, val, config=config, bootstrap=0)
    assert (chosen.suggested, chosen.alpha) == ("bounded", 0.2)
    costs = chosen.selection["mlp"]["bounded_rule"]
    assert set(costs) == set(MLP_WEIGHTINGS)
    for figures in costs.values():
        assert {"dcm_rate", "severe_dcm_rate", "over_rating_rate"} <= set(figures)
    best = min(costs.values(), key=lambda f: (f["severe_dcm_rate"] or 0, f["over_rating_rate"]))
    assert costs[chosen.mlp["class_weighting"]] == best
