"""Ratings: levels, class indices and parsing of every spelling the data may use."""

from __future__ import annotations

import numpy as np
import pytest

from rating_models.ratings import (
    BLOCKED,
    LABELS,
    NUM_CLASSES,
    RATINGS,
    Blocked,
    Rating,
    RatingError,
    parse_label,
)

# -- levels and indices ------------------------------------------------------------------------


def test_levels_are_civitai_powers_of_two():
    assert [r.level for r in RATINGS] == [1, 2, 4, 8, 16]


def test_indices_run_from_zero_for_pg_to_four_for_xxx():
    assert [r.index for r in RATINGS] == [0, 1, 2, 3, 4]


def test_ratings_are_ordered_pg_to_xxx():
    assert RATINGS == (Rating.PG, Rating.PG13, Rating.R, Rating.X, Rating.XXX)
    assert LABELS == ("PG", "PG13", "R", "X", "XXX")
    assert NUM_CLASSES == 5


def test_more_restrictive_rating_compares_greater():
    assert Rating.R > Rating.PG13
    assert Rating.XXX > Rating.X > Rating.R > Rating.PG13 > Rating.PG
    assert max(Rating.PG13, Rating.X, Rating.R) is Rating.X


def test_str_and_label_are_the_name():
    assert str(Rating.PG13) == "PG13"
    assert Rating.XXX.label == "XXX"


def test_blocked_has_level_32_and_label_blocked():
    assert BLOCKED.level == 32
    assert BLOCKED.label == "Blocked"
    assert str(BLOCKED) == "Blocked"


@pytest.mark.parametrize("rating", list(Rating))
def test_from_index_round_trips_every_rating(rating):
    assert Rating.from_index(rating.index) is rating


@pytest.mark.parametrize("index", [-1, 5, 16])
def test_from_index_out_of_range_raises(index):
    with pytest.raises(RatingError, match=r"out of range 0-4"):
        Rating.from_index(index)


# -- parsing names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PG", Rating.PG),
        ("pg", Rating.PG),
        ("PG13", Rating.PG13),
        ("pg-13", Rating.PG13),
        ("PG-13", Rating.PG13),
        ("pg 13", Rating.PG13),
        ("pg_13", Rating.PG13),
        ("R", Rating.R),
        ("r", Rating.R),
        ("X", Rating.X),
        ("XXX", Rating.XXX),
        ("xxx", Rating.XXX),
        ("  X  ", Rating.X),
    ],
)
def test_parses_rating_names_in_any_spelling(text, expected):
    assert parse_label(text) is expected
    assert Rating.parse(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("None", Rating.PG), ("Soft", Rating.PG13), ("Mature", Rating.R), ("mature", Rating.R)],
)
def test_parses_legacy_civitai_names(text, expected):
    assert Rating.parse(text) is expected


def test_a_rating_parses_to_itself():
    assert Rating.parse(Rating.X) is Rating.X
    assert parse_label(BLOCKED) is BLOCKED


# -- parsing numbers: always a level, never an index -------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, Rating.PG),
        (2, Rating.PG13),
        (4, Rating.R),
        (8, Rating.X),
        (16, Rating.XXX),
        (8.0, Rating.X),
        (4.0, Rating.R),
        ("8", Rating.X),
        ("16", Rating.XXX),
        (" 2 ", Rating.PG13),
    ],
)
def test_parses_numeric_levels_as_ints_floats_and_strings(value, expected):
    assert Rating.parse(value) is expected


def test_number_two_is_the_pg13_level_not_the_r_index():
    assert Rating.parse(2) is Rating.PG13
    assert Rating.parse("2") is Rating.PG13


@pytest.mark.parametrize("value", [0, 3, "3", "0", 5, 64, -1])
def test_number_that_is_not_a_level_is_an_error(value):
    with pytest.raises(RatingError, match=r"not a rating"):
        Rating.parse(value)


def test_non_level_number_error_lists_the_levels():
    with pytest.raises(RatingError, match=r"levels are 1, 2, 4, 8, 16, 32"):
        Rating.parse(3)


# -- Blocked -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Blocked", "blocked", 32, "32", 32.0])
def test_parse_label_reads_blocked(value):
    assert parse_label(value) is BLOCKED
    assert isinstance(parse_label(value), Blocked)


@pytest.mark.parametrize("value", ["Blocked", 32, BLOCKED])
def test_rating_parse_refuses_blocked_as_a_moderator_decision(value):
    with pytest.raises(RatingError, match=r"moderator decision"):
        Rating.parse(value)


# -- garbage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["PG-14", "", "   ", "PG13X", "safe", None, True, False, 2.5, float("nan"), [8]]
)
def test_garbage_raises_rating_error(value):
    with pytest.raises(RatingError, match=r"is not a rating"):
        parse_label(value)


def test_garbage_error_names_the_value_and_the_accepted_names():
    with pytest.raises(RatingError) as caught:
        Rating.parse("PG-14")
    message = str(caught.value)
    assert "'PG-14'" in message
    for name in ("PG", "PG13", "R", "X", "XXX", "Blocked", "None, Soft, Mature"):
        assert name in message


def test_booleans_are_not_levels_even_though_true_equals_one():
    with pytest.raises(RatingError, match=r"True is not a rating"):
        Rating.parse(True)


def test_rating_error_is_a_value_error():
    with pytest.raises(ValueError):
        Rating.parse("nonsense")


def test_unicode_digit_string_raises_rating_error():
    with pytest.raises(RatingError):
        parse_label("²")


def test_numpy_integer_level_parses():
    assert parse_label(np.int64(8)) is Rating.X
