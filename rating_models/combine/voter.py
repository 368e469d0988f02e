"""The majority voter: the most voted rating wins, a tie goes to the more restrictive one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rating_models.ratings import NUM_CLASSES


class VoterError(ValueError):
    """A voter that cannot be configured."""


def check_membership(members: Sequence[str], experts: Sequence[str]) -> None:
    """An odd number of distinct, known experts: an even panel ties by design."""
    if not members:
        raise VoterError("the voter needs at least one expert")
    if len(set(members)) != len(members):
        raise VoterError(f"the voter names an expert twice: {list(members)}")
    unknown = [m for m in members if m not in experts]
    if unknown:
        raise VoterError(f"the voter names unknown experts {unknown}; experts: {list(experts)}")
    if len(members) % 2 == 0:
        raise VoterError(
            f"the voter needs an odd number of experts, got {len(members)}: {list(members)}"
        )


def vote(ratings: np.ndarray) -> np.ndarray:
    """Combine votes.

    `ratings` is (N, E): each column one expert's class index per item, -1 where it abstained.
    Returns (N,) class indices; -1 where every expert abstained. Abstentions do not vote, so
    an item with two votes can tie even though the panel is odd: the tie goes to the higher
    rating, the conservative choice.
    """
    ratings = np.asarray(ratings, dtype=np.int64)
    counts = np.zeros((len(ratings), NUM_CLASSES), dtype=np.int64)  # (N, 5)
    for column in ratings.T:
        voted = column >= 0
        counts[np.flatnonzero(voted), column[voted]] += 1
    # Among the classes with the most votes take the highest: argmax of the reversed row
    # finds the last maximum.
    winner = NUM_CLASSES - 1 - counts[:, ::-1].argmax(axis=1)
    return np.where(counts.sum(axis=1) > 0, winner, -1)
