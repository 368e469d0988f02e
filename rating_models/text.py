"""Prompt cleaning and the text segments that every text expert reads.

Generation prompts carry syntax for the sampler, not meaning: LoRA and embedding tags,
attention weights, prompt editing, `BREAK`. Left in, they split words into rare tokens
(`(nude:1.3)` is not `nude` to a word tokenizer), so every text expert cleans prompts the
same way before tokenising.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rating_models.examples import Example

# <lora:name:0.8>, <lyco:name>, <hypernet:name:1>, <embedding:name>
_EXTRA_NETWORK = re.compile(r"<\s*(?:lora|lyco|locon|loha|hypernet|embedding)\s*:[^>]*>", re.I)
_ANGLE_TAG = re.compile(r"<[^<>]{0,200}>")
# embedding:name written without brackets (ComfyUI)
_EMBEDDING_WORD = re.compile(r"\bembedding:[\w.\-]+", re.I)
# (word:1.2), (word:.5) or [word:0.5] -> word. Weights go first, so that prompt editing
# [from:to:0.5] is left as [from:to] -> "from to", whatever weights sit inside it.
_WEIGHT = re.compile(r":\s*-?(?:\d+(?:\.\d*)?|\.\d+)\s*(?=[)\]])")
_EDIT = re.compile(r"\[([^\[\]:]*):([^\[\]:]*)\]")
_BRACKETS = re.compile(r"[()\[\]{}]")
_BREAK = re.compile(r"\bBREAK\b")
_ESCAPED = re.compile(r"\\([()\[\]])")
_SEPARATOR_RUN = re.compile(r"\s*([,;|])(?:\s*[,;|])+\s*")
_SPACE_BEFORE = re.compile(r"\s+([,;.!?])")
_SPACES = re.compile(r"\s+")
# A word of a prompt, as explanations name it; the tag part of a segment follows this lead.
WORD = re.compile(r"\w+")
TAGS_LEAD = " | tags: "


def clean_prompt(text: str) -> str:
    """Strip generation syntax from a prompt, keeping its words.

    >>> clean_prompt("<lora:film:0.8> a (red:1.2) car, [[blurry]] BREAK ,, at night")
    'a red car, blurry, at night'
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = _EXTRA_NETWORK.sub(" ", text)
    text = _ANGLE_TAG.sub(" ", text)
    text = _EMBEDDING_WORD.sub(" ", text)
    text = _ESCAPED.sub(r"\1", text)
    text = _WEIGHT.sub("", text)
    text = _EDIT.sub(r"\1 \2", text)
    text = _BRACKETS.sub(" ", text)
    text = _BREAK.sub(",", text)
    text = _SEPARATOR_RUN.sub(r"\1 ", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACES.sub(" ", text).strip(" ,;|")
    return text


def normalise_tag(name: str) -> str:
    """Compare tag names by this: underscores and spaces alike, case-insensitive."""
    return _SPACES.sub(" ", name.replace("_", " ")).strip().lower()


def kept_tags(example: Example, *, min_confidence: float) -> list[str]:
    """The item's tag names at or above the tagger threshold, most confident first."""
    if not example.tags:
        return []
    kept = sorted((t for t in example.tags if t[1] >= min_confidence), key=lambda t: (-t[1], t[0]))
    return [name for name, _ in kept]


def tag_text(example: Example, *, min_confidence: float) -> str:
    """The item's tags above the tagger threshold, most confident first, as words."""
    return ", ".join(
        normalise_tag(name) for name in kept_tags(example, min_confidence=min_confidence)
    )


def prompt_segment(example: Example, *, with_tags: bool, min_confidence: float) -> str:
    """What the item asks for: the cleaned prompt, then (optionally) its tags."""
    prompt = clean_prompt(example.prompt)
    if not with_tags:
        return prompt
    return f"{prompt}{TAGS_LEAD}{tag_text(example, min_confidence=min_confidence)}"


# -- the words and tags of a segment: what an explanation names ---------------------------------


@dataclass(frozen=True)
class Unit:
    """A word of the cleaned prompt (lower-cased) or one tag (named as the tagger named it, so
    that a page can find it in the item's tag list)."""

    kind: str  # "word" or "tag"
    name: str


def segment_units(
    example: Example, *, with_tags: bool, min_confidence: float
) -> tuple[str, list[tuple[Unit, int, int]]]:
    """`prompt_segment`'s text, and where each word and tag lies in it: (unit, start, end).

    Built piece by piece as `prompt_segment` joins them, so the offsets are exact; the words
    are `WORD` runs of the cleaned prompt (the tag part's words belong to their tag).
    """
    text = clean_prompt(example.prompt)
    spans = [(Unit("word", m.group().lower()), m.start(), m.end()) for m in WORD.finditer(text)]
    if not with_tags:
        return text, spans
    text += TAGS_LEAD
    for n, name in enumerate(kept_tags(example, min_confidence=min_confidence)):
        text += ", " if n else ""
        spans.append((Unit("tag", name), len(text), len(text) + len(normalise_tag(name))))
        text += normalise_tag(name)
    return text, spans


def negative_segment(example: Example) -> str:
    """What the item must not show: always a segment of its own, never part of the prompt."""
    return clean_prompt(example.negative_prompt)
