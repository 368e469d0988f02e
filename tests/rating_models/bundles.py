"""Tiny bundle configurations for tests: real code paths, small random models."""

from __future__ import annotations

from rating_models.examples import Example
from rating_models.ratings import Rating

TINY_LSTM = {
    "embedding_size": 16,
    "hidden_size": 8,
    "epochs": 8,
    "patience": 8,
    "batch_size": 16,
    "lr": 1e-2,
    "min_word_count": 1,
}
TINY_MLP = {"hidden_size": 16, "epochs": 30, "patience": 30}
# Out-of-fold stacking fits every learning expert this many times more: two is enough in tests.
TINY_FOLDS = 2


def lstm_bundle_config() -> dict:
    """Three voters that need no transformer: tag rules and two word LSTMs."""
    return {
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "lstm", "kind": "lstm", "config": TINY_LSTM},
            {"name": "lstm_tags", "kind": "lstm", "config": {**TINY_LSTM, "with_tags": True}},
        ],
        "mlp": TINY_MLP,
        "folds": TINY_FOLDS,
        # Forty toy items cannot bound a DCM rate of 3%: the bounded tests set their own α.
        "suggested": "max",
    }


def transformer_bundle_config(backbone: str, runtime: str = "auto") -> dict:
    """The fast preset's five experts, with a tiny random backbone instead of MiniLM."""
    tiny = {
        "backbone": backbone,
        "head_hidden": 16,
        "epochs": 15,
        "patience": 15,
        "runtime": runtime,
    }
    return {
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "lstm", "kind": "lstm", "config": TINY_LSTM},
            {"name": "text", "kind": "transformer", "config": tiny},
            {"name": "text_tags", "kind": "transformer", "config": {**tiny, "with_tags": True}},
            {"name": "image", "kind": "image", "config": {}},
        ],
        "mlp": TINY_MLP,
        "folds": TINY_FOLDS,
    }


SAFE = ["a cat on a sofa", "a dog in the park", "a tree by the river", "a red car at night"]
EXPLICIT = ["nude woman on a bed", "naked man explicit", "explicit nude photo", "nude naked art"]


def toy_examples(repeat: int = 4, prefix: str = "") -> list[Example]:
    items = []
    for n in range(repeat):
        for i, prompt in enumerate(SAFE):
            items.append(
                Example(f"{prefix}s{n}-{i}", prompt, tags=(("cat", 0.9),), label=Rating.PG)
            )
        for i, prompt in enumerate(EXPLICIT):
            items.append(
                Example(f"{prefix}x{n}-{i}", prompt, tags=(("nude", 0.9),), label=Rating.X)
            )
    return items
