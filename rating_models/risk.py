"""A suggested rating whose down-class rate is bounded: conformal risk control.

The MLP gives each item a probability per rating. The rule raises an item's rating from PG
until the probability mass above it falls below a threshold λ:

    rating_λ(x) = the lowest index i with  P(rating > i | x) < λ      (XXX when none)

optionally never below the voter's rating (the floor). A down-class error (DCM) is a true
rating above the suggested one; its indicator only grows with λ, so conformal risk control
(Angelopoulos et al., "Conformal Risk Control", 2022) applies: over n exchangeable calibration
items, choosing

    λ̂ = the largest λ with  (n · DCM rate_n(λ) + 1) / (n + 1) ≤ α

makes the expected DCM rate on a new item at most α. The calibration items must be ones the
MLP did not learn from: the bundle's out-of-fold MLP probabilities on train + val.

Item i is down-classed at λ exactly when its score s_i = P(rating > y_i - 1 | x_i) is below
λ (an item whose true rating is PG, or that the floor already rates high enough, never is).
So λ̂ is an order statistic of the scores: the (k + 1)-th smallest, k = ⌊α (n + 1)⌋ - 1.

The severe DCM rate (an X or XXX item rated PG or PG13) is bounded the same way over the
explicit calibration items, when there are enough of them for the bound to exist
(α_severe (n_explicit + 1) ≥ 1); the rule then takes the smaller of the two thresholds.

MAPIE and crepes calibrate prediction sets and regression intervals; neither controls an
ordinal loss such as this one, and the rule itself is the order statistic above: it is
written here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rating_models.ratings import NUM_CLASSES

EXPLICIT_FROM = 3  # X and XXX
MILD_UP_TO = 1  # PG and PG13


def mass_above(probs: np.ndarray) -> np.ndarray:
    """P(rating > i) for each item and index i: (N, 5), the last column 0."""
    probs = np.asarray(probs, dtype=np.float64)
    cumulative = np.cumsum(probs, axis=1)
    return np.clip(cumulative[:, -1:] - cumulative, 0.0, 1.0)


def raise_until(probs: np.ndarray, threshold: float, floor: np.ndarray | None = None) -> np.ndarray:
    """The rule's class indices: the lowest with mass above it below `threshold` (XXX when
    none is), never below `floor` where the floor is a rating (>= 0)."""
    below = mass_above(probs) < threshold
    below[:, -1] = True  # XXX has nothing above it: the rating never goes past it
    levels = below.argmax(axis=1)
    if floor is not None:
        levels = np.maximum(levels, np.asarray(floor, dtype=np.int64))
    return levels


def dcm_scores(
    probs: np.ndarray, labels: np.ndarray, floor: np.ndarray | None = None
) -> np.ndarray:
    """s_i: item i is down-classed by the rule at λ exactly when s_i < λ (inf: never)."""
    labels = np.asarray(labels, dtype=np.int64)
    above = mass_above(probs)
    scores = np.full(len(labels), np.inf)
    rated_above_pg = labels > 0
    rows = np.flatnonzero(rated_above_pg)
    scores[rows] = above[rows, labels[rows] - 1]
    if floor is not None:
        scores[np.asarray(floor, dtype=np.int64) >= labels] = np.inf
    return scores


def severe_scores(
    probs: np.ndarray, labels: np.ndarray, floor: np.ndarray | None = None
) -> np.ndarray:
    """For the explicit items only: severely down-classed (rated PG or PG13) when s < λ."""
    labels = np.asarray(labels, dtype=np.int64)
    explicit = labels >= EXPLICIT_FROM
    scores = mass_above(probs)[explicit, MILD_UP_TO]
    if floor is not None:
        scores = np.where(np.asarray(floor, dtype=np.int64)[explicit] > MILD_UP_TO, np.inf, scores)
    return scores


def crc_threshold(scores: np.ndarray, alpha: float) -> float | None:
    """The largest λ whose conformal risk bound, (#{s < λ} + 1) / (n + 1), is at most α;
    None when no λ can meet it (too few items for this α: even λ = 0 is bounded by
    1 / (n + 1))."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha}: expected a share between 0 and 1")
    n = len(scores)
    k = math.floor(alpha * (n + 1) + 1e-9) - 1  # the errors the bound allows on calibration
    if k < 0:
        return None
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    if k >= n or not np.isfinite(ordered[k]):
        return 1.0 + 1e-9  # fewer than k + 1 items can ever be down-classed: any λ will do
    return float(ordered[k])  # k items have a smaller score: exactly k errors at most


@dataclass(frozen=True)
class BoundedRule:
    """The calibrated rule, as the bundle's manifest keeps it."""

    alpha: float  # the target expected DCM rate
    threshold: float  # λ̂
    voter_floor: bool
    n: int  # calibration items
    severe_alpha: float | None = None
    severe_threshold: float | None = None  # None: too few explicit items to bound it
    n_explicit: int = 0

    def levels(self, probs: np.ndarray, votes: np.ndarray | None = None) -> np.ndarray:
        """Class indices for items with these MLP probabilities (and voter ratings, -1 where
        the voter abstained)."""
        floor = None if not self.voter_floor or votes is None else np.asarray(votes)
        return raise_until(probs, self.effective_threshold, floor)

    @property
    def effective_threshold(self) -> float:
        if self.severe_threshold is None:
            return self.threshold
        return min(self.threshold, self.severe_threshold)

    def to_manifest(self) -> dict[str, Any]:
        return {"rule": "conformal risk control on the MLP's mass above", **asdict(self)}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> BoundedRule:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


def calibrate(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    alpha: float,
    votes: np.ndarray | None = None,
    severe_alpha: float | None = None,
) -> BoundedRule:
    """The rule for `alpha` from calibration items the MLP did not learn from. `votes`: the
    voter's rating as a floor (-1 where it abstained). Raises ValueError when there are too few
    items for `alpha` (fewer than 1/α - 1)."""
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    if probs.shape != (len(labels), NUM_CLASSES):
        raise ValueError(f"probabilities {probs.shape} for {len(labels)} labels")
    threshold = crc_threshold(dcm_scores(probs, labels, votes), alpha)
    if threshold is None:
        raise ValueError(
            f"{len(labels)} calibration items cannot bound the DCM rate at {alpha:.1%}: "
            f"at least {math.ceil(1 / alpha) - 1} are needed"
        )
    severe = None
    explicit = int(np.sum(labels >= EXPLICIT_FROM))
    if severe_alpha is not None and explicit:
        severe = crc_threshold(severe_scores(probs, labels, votes), severe_alpha)
    return BoundedRule(
        alpha=alpha,
        threshold=threshold,
        voter_floor=votes is not None,
        n=len(labels),
        severe_alpha=severe_alpha,
        severe_threshold=severe,
        n_explicit=explicit,
    )


def rates(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """The DCM, severe DCM (over the explicit items; None without any) and over-rating rates
    of these predicted class indices."""
    predicted, labels = np.asarray(predicted), np.asarray(labels, dtype=np.int64)
    explicit = labels >= EXPLICIT_FROM
    return {
        "dcm_rate": float(np.mean(predicted < labels)) if len(labels) else 0.0,
        "over_rating_rate": float(np.mean(predicted > labels)) if len(labels) else 0.0,
        "severe_dcm_rate": (
            float(np.mean(predicted[explicit] <= MILD_UP_TO)) if explicit.any() else None
        ),
    }


def tradeoff(
    probs: np.ndarray,
    labels: np.ndarray,
    rule_for: Any,
    alphas: list[float],
    votes: np.ndarray | None = None,
) -> list[dict[str, float | None]]:
    """For each α, the rates of `rule_for(α)` on these items (the curve of DCM against
    over-rating)."""
    return [
        {"alpha": alpha, **rates(rule_for(alpha).levels(probs, votes), labels)} for alpha in alphas
    ]
