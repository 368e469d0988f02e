"""The majority voter and its membership check."""

from __future__ import annotations

import numpy as np
import pytest

from rating_models.combine.voter import VoterError, check_membership, vote

PG, PG13, R, X, XXX = range(5)
ABSTAIN = -1


def _vote_one(*votes: int) -> int:
    result = vote(np.array([votes]))
    assert result.shape == (1,)
    return int(result[0])


# -- vote --------------------------------------------------------------------------------------


def test_majority_wins():
    assert _vote_one(PG, PG, X) == PG


def test_majority_wins_over_a_more_restrictive_minority():
    assert _vote_one(R, R, XXX, XXX, R) == R


def test_unanimous_vote_is_that_rating():
    assert _vote_one(PG13, PG13, PG13) == PG13


def test_tie_goes_to_higher_rating():
    assert _vote_one(PG, R) == R
    assert _vote_one(R, PG) == R


def test_two_way_tie_of_pairs_goes_to_higher_rating():
    assert _vote_one(PG, PG, X, X) == X
    assert _vote_one(X, PG, X, PG) == X


def test_three_way_tie_goes_to_the_highest_rating():
    assert _vote_one(PG13, XXX, PG) == XXX


def test_tie_ignores_ratings_with_fewer_votes():
    # PG and PG13 tie on two; the single XXX vote must not win.
    assert _vote_one(PG, PG, PG13, PG13, XXX) == PG13


def test_abstentions_do_not_vote():
    assert _vote_one(ABSTAIN, PG, PG) == PG
    assert _vote_one(R, ABSTAIN, ABSTAIN) == R


def test_abstentions_can_turn_a_majority_into_a_tie():
    assert _vote_one(PG, X, ABSTAIN) == X


def test_all_abstain_gives_minus_one():
    assert _vote_one(ABSTAIN, ABSTAIN, ABSTAIN) == ABSTAIN


def test_each_row_is_voted_independently():
    ratings = np.array(
        [
            [PG, PG, X],
            [ABSTAIN, ABSTAIN, ABSTAIN],
            [PG, R, ABSTAIN],
            [XXX, XXX, PG13],
        ]
    )
    assert vote(ratings).tolist() == [PG, ABSTAIN, R, XXX]


def test_single_expert_vote_is_its_rating():
    assert vote(np.array([[PG], [X], [ABSTAIN]])).tolist() == [PG, X, ABSTAIN]


def test_vote_accepts_nested_lists():
    assert vote([[PG, R, R]]).tolist() == [R]


# -- check_membership --------------------------------------------------------------------------

EXPERTS = ["tags", "lstm", "transformer", "image"]


def test_odd_distinct_known_members_are_accepted():
    check_membership(["tags", "lstm", "image"], EXPERTS)
    check_membership(["transformer"], EXPERTS)


def test_even_count_is_refused():
    with pytest.raises(VoterError, match=r"odd number of experts, got 2"):
        check_membership(["tags", "lstm"], EXPERTS)


def test_four_members_are_refused():
    with pytest.raises(VoterError, match=r"odd number"):
        check_membership(EXPERTS, EXPERTS)


def test_duplicate_member_is_refused():
    with pytest.raises(VoterError, match=r"names an expert twice") as caught:
        check_membership(["tags", "lstm", "tags"], EXPERTS)
    assert "tags" in str(caught.value)


def test_unknown_member_is_refused_and_named():
    with pytest.raises(VoterError, match=r"unknown experts \['ghost'\]") as caught:
        check_membership(["tags", "lstm", "ghost"], EXPERTS)
    assert "image" in str(caught.value)  # lists the known experts


def test_empty_membership_is_refused():
    with pytest.raises(VoterError, match=r"at least one expert"):
        check_membership([], EXPERTS)


def test_voter_error_is_a_value_error():
    with pytest.raises(ValueError):
        check_membership([], EXPERTS)
