"""The majority voter: an odd panel on every item, the most voted rating wins.

The panel is a list of experts ranked strongest first (by cross-validated macro-F1 when the
bundle was trained). Experts without their modality abstain, so the experts that can speak on
an item vary: three on a prompt alone (prompt experts), five with tags, six with an image too.
The rule that keeps every item's panel odd:

    of the panel's experts that spoke on the item, if their number is even, the weakest
    (the last in rank order) sits out.

Dropping the weakest costs the least accuracy and needs nothing the panel does not already
have; the alternative, letting the MLP cast a deciding vote, would make the voter a function
of the MLP and take away the independent second opinion the voter exists to be. A tie can
still happen (three experts, three different ratings): it goes to the more restrictive rating,
the last resort.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rating_models.ratings import NUM_CLASSES


class VoterError(ValueError):
    """A voter that cannot be configured."""


def check_membership(members: Sequence[str], experts: Sequence[str]) -> None:
    """Distinct, known experts, at least one. The panel's size may be even: on each item an
    even number of speaking experts loses its weakest (`vote`)."""
    if not members:
        raise VoterError("the voter needs at least one expert")
    if len(set(members)) != len(members):
        raise VoterError(f"the voter names an expert twice: {list(members)}")
    unknown = [m for m in members if m not in experts]
    if unknown:
        raise VoterError(f"the voter names unknown experts {unknown}; experts: {list(experts)}")


def panel(ratings: np.ndarray) -> np.ndarray:
    """(N, E) bool: which experts vote on each item.

    `ratings` is (N, E), columns in rank order (strongest first), -1 where the expert
    abstained. Every abstaining expert sits out; where an even number spoke, so does the
    weakest of them, so every item with a vote has an odd number of voters.
    """
    ratings = _matrix(ratings)
    spoke = ratings >= 0
    voting = spoke.copy()
    even = (spoke.sum(axis=1) % 2 == 0) & spoke.any(axis=1)
    if ratings.shape[1]:
        # The last speaking column: argmax over the reversed row finds the last True.
        weakest = ratings.shape[1] - 1 - spoke[:, ::-1].argmax(axis=1)
        voting[np.flatnonzero(even), weakest[even]] = False
    return voting


def vote(ratings: np.ndarray) -> np.ndarray:
    """Combine votes: (N,) class indices, -1 where every expert abstained.

    `ratings` is (N, E): each column one expert's class index per item (-1: abstained), in
    rank order, strongest first. The panel is made odd on every item (`panel`); among the
    classes with the most votes the highest wins, the conservative choice.
    """
    ratings = _matrix(ratings)
    voting = panel(ratings)
    counts = np.zeros((len(ratings), NUM_CLASSES), dtype=np.int64)  # (N, 5)
    for column, votes in zip(ratings.T, voting.T, strict=True):
        counts[np.flatnonzero(votes), column[votes]] += 1
    # Among the classes with the most votes take the highest: argmax of the reversed row
    # finds the last maximum.
    winner = NUM_CLASSES - 1 - counts[:, ::-1].argmax(axis=1)
    return np.where(counts.sum(axis=1) > 0, winner, -1)


def _matrix(ratings: np.ndarray) -> np.ndarray:
    ratings = np.asarray(ratings, dtype=np.int64)
    return ratings[:, None] if ratings.ndim == 1 else ratings


def rank_by(scores: dict[str, float], members: Sequence[str]) -> list[str]:
    """`members` ordered strongest first by `scores` (a missing score ranks last); equal
    scores keep the given order."""
    order = {name: position for position, name in enumerate(members)}
    return sorted(members, key=lambda name: (-scores.get(name, float("-inf")), order[name]))
