"""The majority voter and its membership check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rating_models.combine.voter import VoterError, check_membership, panel, rank_by, vote

PG, PG13, R, X, XXX = range(5)
ABSTAIN = -1
EXPERTS = ["tags", "lstm", "transformer", "image"]


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


def test_two_speaking_experts_leave_the_stronger_to_decide():
    # Ranked strongest first: of two, the second (weaker) sits out, whatever it says.
    assert _vote_one(PG, R) == PG
    assert _vote_one(R, PG) == R
    assert _vote_one(XXX, PG) == XXX


def test_four_speaking_experts_lose_the_weakest():
    # Without the fourth: PG, PG, X, a majority for PG (no tie to break upwards).
    assert _vote_one(PG, PG, X, X) == PG
    assert _vote_one(X, PG, X, PG) == X
    assert _vote_one(PG, X, X, PG) == X


def test_three_way_tie_goes_to_the_highest_rating():
    assert _vote_one(PG13, XXX, PG) == XXX


def test_tie_ignores_ratings_with_fewer_votes():
    # PG and PG13 tie on two; the single XXX vote must not win.
    assert _vote_one(PG, PG, PG13, PG13, XXX) == PG13


def test_abstentions_do_not_vote():
    assert _vote_one(ABSTAIN, PG, PG) == PG
    assert _vote_one(R, ABSTAIN, ABSTAIN) == R


def test_abstentions_that_leave_an_even_panel_send_the_weakest_speaker_out():
    # Two speak: the second of them sits out, not the abstaining third.
    assert _vote_one(PG, X, ABSTAIN) == PG
    assert _vote_one(ABSTAIN, PG, X) == PG
    assert _vote_one(X, ABSTAIN, PG) == X
    # Four of six speak: the last speaker (column 4) sits out, columns 0, 2 and 3 vote.
    assert _vote_one(PG, ABSTAIN, X, X, PG, ABSTAIN) == X
    assert _vote_one(PG, ABSTAIN, PG, X, X, ABSTAIN) == PG


def test_all_abstain_gives_minus_one():
    assert _vote_one(ABSTAIN, ABSTAIN, ABSTAIN) == ABSTAIN


def test_each_row_is_voted_independently():
    ratings = np.array(
        [
            [PG, PG, X],
            [ABSTAIN, ABSTAIN, ABSTAIN],
            [PG, R, ABSTAIN],
            [ABSTAIN, R, PG],
            [XXX, XXX, PG13],
        ]
    )
    assert vote(ratings).tolist() == [PG, ABSTAIN, PG, R, XXX]


def test_single_expert_vote_is_its_rating():
    assert vote(np.array([[PG], [X], [ABSTAIN]])).tolist() == [PG, X, ABSTAIN]


def test_vote_accepts_nested_lists():
    assert vote([[PG, R, R]]).tolist() == [R]


def test_three_speakers_with_three_different_ratings_give_the_highest():
    assert _vote_one(PG, R, X) == X
    assert _vote_one(X, ABSTAIN, PG13, PG) == X


def test_every_row_with_a_vote_has_an_odd_number_of_voters():
    rng = np.random.default_rng(0)
    ratings = rng.integers(-1, 5, size=(500, 6))
    voters = panel(ratings).sum(axis=1)
    spoke = (ratings >= 0).sum(axis=1)
    assert (voters[spoke > 0] % 2 == 1).all()
    assert (voters[spoke == 0] == 0).all()
    # The vote is the majority of the panel: recount it from `panel` alone.
    voting = panel(ratings)
    for row in range(len(ratings)):
        counts = np.bincount(ratings[row][voting[row]], minlength=5)
        if counts.sum():
            assert vote(ratings[row : row + 1])[0] == 4 - counts[::-1].argmax()


# -- panel -------------------------------------------------------------------------------------


def test_panel_keeps_an_odd_number_of_speakers_whole():
    assert panel(np.array([[PG, R, X]])).tolist() == [[True, True, True]]
    assert panel(np.array([[PG]])).tolist() == [[True]]


def test_panel_leaves_out_abstainers_and_the_weakest_of_an_even_number_of_speakers():
    three = panel(np.array([[PG, R, ABSTAIN], [ABSTAIN, R, PG], [ABSTAIN, ABSTAIN, ABSTAIN]]))
    assert three.tolist() == [
        [True, False, False],
        [False, True, False],
        [False, False, False],
    ]
    four = panel(
        np.array([[PG, R, X, XXX], [PG, ABSTAIN, X, ABSTAIN], [ABSTAIN, ABSTAIN, ABSTAIN, R]])
    )
    assert four.tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [False, False, False, True],
    ]


def test_panel_of_an_empty_batch_is_empty():
    assert panel(np.zeros((0, 3), dtype=np.int64)).shape == (0, 3)
    assert vote(np.zeros((0, 3), dtype=np.int64)).shape == (0,)


SIX = 6
PATTERNS = [
    present for size in range(1, SIX + 1) for present in itertools.combinations(range(SIX), size)
]


def test_there_are_63_abstention_patterns_of_six_experts():
    assert len(PATTERNS) == 2**SIX - 1


@pytest.mark.parametrize("present", PATTERNS, ids=lambda p: "".join(map(str, p)))
def test_every_abstention_pattern_of_a_six_expert_panel_votes_with_an_odd_panel(present):
    # Every rating each present expert could give, a few draws of them.
    rng = np.random.default_rng(len(present) * 100 + sum(present))
    ratings = np.full((20, SIX), ABSTAIN)
    ratings[:, list(present)] = rng.integers(0, 5, size=(20, len(present)))
    voting = panel(ratings)
    voters = voting.sum(axis=1)
    assert (voters % 2 == 1).all()
    assert not voting[:, [c for c in range(SIX) if c not in present]].any()  # abstainers out
    expected = list(present) if len(present) % 2 else list(present[:-1])  # weakest out
    assert (voting == np.isin(np.arange(SIX), expected)).all()
    assert (vote(ratings) >= 0).all()


# -- rank_by -----------------------------------------------------------------------------------


def test_rank_by_orders_members_strongest_first():
    scores = {"tags": 0.4, "lstm": 0.7, "transformer": 0.9, "image": 0.1}
    assert rank_by(scores, EXPERTS) == ["transformer", "lstm", "tags", "image"]


def test_rank_by_keeps_the_given_order_on_equal_scores_and_puts_unscored_members_last():
    scores = {"lstm": 0.5, "transformer": 0.5, "image": 0.6}
    assert rank_by(scores, EXPERTS) == ["image", "lstm", "transformer", "tags"]
    assert rank_by({}, EXPERTS) == EXPERTS


def test_rank_by_ranks_only_the_members():
    assert rank_by({"image": 1.0, "lstm": 0.1, "tags": 0.2}, ["lstm", "tags"]) == ["tags", "lstm"]


# -- check_membership --------------------------------------------------------------------------


def test_odd_distinct_known_members_are_accepted():
    check_membership(["tags", "lstm", "image"], EXPERTS)
    check_membership(["transformer"], EXPERTS)


def test_even_panels_are_accepted():
    # Each item's panel is made odd by `panel`; the membership may be even.
    check_membership(["tags", "lstm"], EXPERTS)
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
