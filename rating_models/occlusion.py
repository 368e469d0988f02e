"""Occlusion: what each word and tag of an item does to a neural expert's rating.

An item's variants each leave out one word of the prompt (every occurrence of it) or one tag;
the expert rates every variant of a batch of items in one `predict` call (its own batching:
length-sorted encoder batches), and a word's weight is the drop of the expert's probability
mass at or above its rating when the word is gone. It needs nothing from the model but
`predict`, so it serves the transformer experts and the LSTM alike, in whatever runtime the
bundle loaded them. Integrated gradients (captum) would need a differentiable path from the
encoder's embeddings, which the ONNX runtimes lack, and a forward and a backward pass for each
of 20 to 50 steps: more than an item's dozen or two variants.

Words are taken from the cleaned prompt, as the experts read it, and removed from the raw
prompt, so the experts' own cleaning runs on the variant as on the item.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from rating_models.examples import Example
from rating_models.experts import Expert
from rating_models.text import WORD, Unit, clean_prompt, kept_tags, tag_text

# Past this many distinct words and tags an item's variants would cost more than the rest of
# its batch; the first ones are kept (prompts put what matters early, and the encoders read
# only the first 512 tokens anyway).
MAX_UNITS = 48
# Words that cost a variant each and never change what a moderator needs to see: one-letter
# words, and articles and prepositions. Not sklearn's English stop words, which hold words
# that rate prompts ("see" and "through", "top", "off", "without", "under").
MIN_WORD_LENGTH = 2
FUNCTION_WORDS = frozenset(
    {"an", "and", "as", "at", "by", "for", "from", "in", "into", "is", "it", "its", "of", "on"}
    | {"or", "the", "this", "that", "to"}
)


def units(expert: Expert, example: Example) -> list[Unit]:
    """The words and tags of an item the expert reads, each once, prompt first."""
    words = dict.fromkeys(
        m.group().lower()
        for m in WORD.finditer(clean_prompt(example.prompt))
        if len(m.group()) >= MIN_WORD_LENGTH and m.group().lower() not in FUNCTION_WORDS
    )
    found = [Unit("word", w) for w in words]
    config = expert.config
    if getattr(config, "with_tags", False):
        found += [
            Unit("tag", t) for t in kept_tags(example, min_confidence=config.min_tag_confidence)
        ]
    return found[:MAX_UNITS]


def work(expert: Expert, example: Example, found: Sequence[Unit]) -> int:
    """What occluding `found` costs the expert, in characters read: every variant is read
    whole, and an encoder's time grows with what it reads."""
    length = len(clean_prompt(example.prompt)) + len(clean_prompt(example.negative_prompt))
    config = expert.config
    if getattr(config, "with_tags", False):
        length += len(tag_text(example, min_confidence=config.min_tag_confidence))
    return len(found) * max(length, 1)


def word_pattern(word: str) -> re.Pattern[str]:
    """Every occurrence of a word in a raw prompt, in any case, never inside a longer word."""
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def without(example: Example, unit: Unit) -> Example:
    """The item with one word (each occurrence) or one tag left out."""
    if unit.kind == "word":
        return dataclasses.replace(example, prompt=word_pattern(unit.name).sub(" ", example.prompt))
    kept = tuple(t for t in example.tags or () if t[0] != unit.name)
    return dataclasses.replace(example, tags=kept)


def mass_at_or_above(probs: np.ndarray, rating: int) -> np.ndarray:
    """What holds an item at `rating`: the probability mass at or above it; at PG, where that is
    always 1, the mass at PG."""
    if rating == 0:
        return probs[..., 0]
    return probs[..., rating:].sum(axis=-1)


def occlude(
    expert: Expert,
    examples: Sequence[Example],
    ratings: Sequence[int],
    probs: np.ndarray,
    per_item: Sequence[Sequence[Unit]],
) -> list[dict[Unit, float]]:
    """Per example, the weight toward its rating (a class index) of each of its `per_item`
    words and tags (`units`), from the expert's probabilities for the examples (N x 5, as
    `predict` gave them): one `predict` call over every variant of every example."""
    variants = [without(e, u) for e, found in zip(examples, per_item, strict=True) for u in found]
    if not variants:
        return [{} for _ in examples]
    varied = expert.predict(variants).probs  # (V, 5)
    weights, start = [], 0
    for found, rating, base in zip(per_item, ratings, probs, strict=True):
        drop = mass_at_or_above(base, rating) - mass_at_or_above(
            varied[start : start + len(found)], rating
        )  # (units,)
        weights.append({u: float(d) for u, d in zip(found, drop, strict=True)})
        start += len(found)
    return weights
