"""Prompt cleaning, tag normalisation and the text segments the text experts read."""

from __future__ import annotations

import pytest

from rating_models.text import (
    clean_prompt,
    negative_segment,
    normalise_tag,
    prompt_segment,
    segment_units,
    tag_text,
)
from tests.factories import make_example

# -- clean_prompt: extra networks and embeddings ----------------------------------------------


@pytest.mark.parametrize(
    "syntax",
    [
        "<lora:film_grain:0.8>",
        "<lora:name>",
        "<LORA:Name:1>",
        "<lyco:x>",
        "<locon:x:0.5>",
        "<hypernet:y:1>",
        "<embedding:neg>",
        "< lora : spaced : 0.3 >",
        "embedding:foo",
        "embedding:easy-negative.pt",
    ],
)
def test_extra_network_and_embedding_syntax_is_removed(syntax):
    assert clean_prompt(f"a cat {syntax} on a sofa") == "a cat on a sofa"


def test_lora_name_does_not_leak_into_the_words():
    cleaned = clean_prompt("<lora:nsfwStyle:0.8> portrait")
    assert "nsfw" not in cleaned.lower()
    assert cleaned == "portrait"


# -- clean_prompt: attention and prompt editing -----------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(nude:1.3)", "nude"),
        ("(nude: 1.3 )", "nude"),
        ("(nude:-0.5)", "nude"),
        ("(nude:2)", "nude"),
        ("((nude))", "nude"),
        ("(((nude)))", "nude"),
        ("[nude]", "nude"),
        ("[[nude]]", "nude"),
        ("{nude}", "nude"),
    ],
)
def test_attention_syntax_is_removed_and_the_word_kept(prompt, expected):
    assert clean_prompt(prompt) == expected


def test_weighted_group_keeps_all_its_words():
    assert clean_prompt("(masterpiece, best quality:1.2), cat") == "masterpiece, best quality, cat"


def test_adjacent_weighted_words_stay_separate():
    assert clean_prompt("a (red:1.5)(car:0.8) here") == "a red car here"


def test_prompt_editing_keeps_both_words():
    assert clean_prompt("a [cat:dog:0.5] outside") == "a cat dog outside"


def test_prompt_editing_with_step_number_keeps_both_words():
    assert clean_prompt("[cat:dog:10]") == "cat dog"


def test_prompt_editing_without_a_number_keeps_both_words():
    assert clean_prompt("[cat:dog]") == "cat dog"


def test_delayed_word_prompt_editing_drops_the_step_number():
    assert clean_prompt("[nude:0.5]") == "nude"


def test_weighted_word_inside_prompt_editing_is_cleaned():
    assert clean_prompt("[(red:1.2):blue:0.5]") == "red blue"


def test_weight_without_leading_zero_is_removed():
    assert clean_prompt("(nude:.5)") == "nude"


def test_escaped_parentheses_keep_the_word_without_backslashes():
    cleaned = clean_prompt(r"1girl \(artist\) portrait")
    assert "\\" not in cleaned
    assert cleaned == "1girl artist portrait"


def test_break_keyword_becomes_a_separator():
    assert clean_prompt("a cat BREAK a dog") == "a cat, a dog"


def test_break_is_only_the_uppercase_whole_word():
    assert clean_prompt("breakfast BREAKFAST break") == "breakfast BREAKFAST break"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a, , , b", "a, b"),
        ("a,,,b", "a, b"),
        ("a ,  ,b", "a, b"),
        ("a, BREAK, b", "a, b"),
        ("a BREAK BREAK b", "a, b"),
        (", , a, b ,", "a, b"),
    ],
)
def test_repeated_separators_collapse_to_one(prompt, expected):
    assert clean_prompt(prompt) == expected


def test_separator_left_by_removed_syntax_collapses():
    assert clean_prompt("a, <lora:x:1>, b") == "a, b"


# -- clean_prompt: characters and whitespace ---------------------------------------------------


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1f", "\x7f", "\u200b", "\ufeff"])
def test_control_and_format_characters_are_removed(control):
    cleaned = clean_prompt(f"red{control}car")
    assert control not in cleaned
    assert cleaned == "red car"


def test_whitespace_is_normalised():
    assert clean_prompt("  a \t cat\n\non\u00a0a   sofa  ") == "a cat on a sofa"


def test_fullwidth_letters_are_normalised():
    assert clean_prompt("ｎｕｄｅ") == "nude"


@pytest.mark.parametrize("empty", ["", None, "   ", "\x00", "<lora:x:1>", ", , ,"])
def test_empty_input_gives_empty_string(empty):
    assert clean_prompt(empty) == ""


def test_words_are_kept_in_order():
    prompt = "<lora:a:1> (masterpiece:1.2), [a] ((red)) car, BREAK on a [street:road:0.3]"
    assert clean_prompt(prompt) == "masterpiece, a red car, on a street road"


def test_plain_prompt_is_unchanged():
    prompt = "a developer losing his mind over his failing code."
    assert clean_prompt(prompt) == prompt


# -- normalise_tag -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["completely nude", "Completely_Nude", "COMPLETELY NUDE", "  completely__nude  "]
)
def test_normalise_tag_treats_underscores_spaces_and_case_alike(name):
    assert normalise_tag(name) == "completely nude"


def test_normalise_tag_keeps_plus_and_punctuation():
    assert normalise_tag("6+Girls") == "6+girls"
    assert normalise_tag("see-through") == "see-through"


# -- segments ----------------------------------------------------------------------------------


def test_prompt_segment_without_tags_is_the_cleaned_prompt():
    example = make_example(prompt="a (cat:1.2) on a sofa", tags=[("nude", 1.0)])
    assert prompt_segment(example, with_tags=False, min_confidence=0.35) == "a cat on a sofa"


def test_negative_prompt_words_never_appear_in_the_prompt_segment():
    example = make_example(
        prompt="a cat on a sofa", negative_prompt="(nsfw:1.4), nude, explicit", tags=[]
    )
    for with_tags in (False, True):
        segment = prompt_segment(example, with_tags=with_tags, min_confidence=0.35)
        for word in ("nsfw", "nude", "explicit"):
            assert word not in segment


def test_negative_segment_is_the_cleaned_negative_prompt_only():
    example = make_example(prompt="a cat on a sofa", negative_prompt="(nsfw:1.4), ((nude))")
    assert negative_segment(example) == "nsfw, nude"


def test_negative_segment_is_empty_without_a_negative_prompt():
    assert negative_segment(make_example(negative_prompt="")) == ""


def test_prompt_segment_with_tags_orders_by_confidence_and_applies_threshold():
    example = make_example(
        prompt="a cat", tags=[("cat", 0.5), ("Sofa_Cushion", 0.9), ("dog", 0.2), ("rug", 0.35)]
    )
    segment = prompt_segment(example, with_tags=True, min_confidence=0.35)
    assert segment == "a cat | tags: sofa cushion, cat, rug"


def test_min_confidence_is_inclusive():
    example = make_example(tags=[("rug", 0.35)])
    assert tag_text(example, min_confidence=0.35) == "rug"
    assert tag_text(example, min_confidence=0.36) == ""


def test_tags_with_equal_confidence_are_ordered_by_name():
    example = make_example(tags=[("zebra", 0.8), ("apple", 0.8)])
    assert tag_text(example, min_confidence=0.0) == "apple, zebra"


@pytest.mark.parametrize("tags", [None, ()])
def test_prompt_segment_with_no_tags_has_an_empty_tag_part(tags):
    example = make_example(prompt="a cat", tags=tags)
    assert prompt_segment(example, with_tags=True, min_confidence=0.35) == "a cat | tags: "


def test_segment_units_give_the_segment_and_where_each_word_and_tag_lies_in_it():
    example = make_example(
        prompt="<lora:x:1> A (nude:1.2) woman", tags=[("large_breasts", 0.9), ("cat", 0.1)]
    )
    text, spans = segment_units(example, with_tags=True, min_confidence=0.35)

    assert text == prompt_segment(example, with_tags=True, min_confidence=0.35)
    assert [(u.kind, u.name, text[a:b]) for u, a, b in spans] == [
        ("word", "a", "A"),
        ("word", "nude", "nude"),
        ("word", "woman", "woman"),
        ("tag", "large_breasts", "large breasts"),
    ]
