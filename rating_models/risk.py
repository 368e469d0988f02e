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

Publishing without a moderator. An item whose suggested rating r leaves little mass above it,
P(rating > r | x) < τ, is published at r unreviewed; the DCM rate among exactly those items is
what a platform risks. τ is chosen by Learn then Test (Angelopoulos et al., 2021) with fixed
sequence testing: along a grid of τ fixed in advance, from the most cautious up, the null
hypothesis "the DCM rate among the items published at τ exceeds α" is rejected while the
binomial tail of the errors seen among the published calibration items is at most δ; τ̂ is the
last rejected. (The walk starts at the first τ that publishes enough items to reject at all,
which the unlabelled risks decide.) Then, with probability at least 1 - δ over the
calibration items, the expected DCM rate among published items is at most α; no τ rejected,
nothing is published. One guard comes first, label-free: an item rated PG or PG13 that some
expert rates X or XXX (an *explicit alarm*) is never published, so the few explicit items,
which a DCM rate over all items barely weighs, do not slip out unreviewed on the MLP's word
alone; the test walks over the items the guard lets through. The same items chose λ̂ a step
before: one threshold out of thousands of items, which the test split and the live figures
check (the DCM among published items).

MAPIE and crepes calibrate prediction sets and regression intervals; neither controls an
ordinal loss such as this one, and the rule itself is the order statistic above: it is
written here (scipy gives the binomial tail).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import binom

from rating_models.ratings import NUM_CLASSES

EXPLICIT_FROM = 3  # X and XXX
MILD_UP_TO = 1  # PG and PG13
PUBLISH_DELTA = 0.1  # the publishing bound holds with probability 1 - δ
# The τ Learn then Test walks, most cautious first: fixed before any item is seen.
PUBLISH_GRID = tuple(float(t) for t in np.geomspace(1e-4, 1.0, 161))


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


def explicit_alarms(ratings: np.ndarray) -> np.ndarray:
    """(N,) bool: some expert rates the item X or XXX. `ratings`: (N, experts) class indices,
    -1 where an expert abstained."""
    return (np.asarray(ratings) >= EXPLICIT_FROM).any(axis=1)


def risk_above(probs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """P(rating > level | x) at each item's rated level: the chance it is down-classed."""
    levels = np.asarray(levels, dtype=np.int64)
    return mass_above(probs)[np.arange(len(levels)), levels]


def publish_threshold(
    risk: np.ndarray,
    errors: np.ndarray,
    alpha: float,
    *,
    delta: float = PUBLISH_DELTA,
    grid: tuple[float, ...] = PUBLISH_GRID,
) -> float | None:
    """τ̂ by fixed sequence testing: the largest τ on `grid`, walked from its start, such that
    every τ up to it rejects "DCM rate among items with risk < τ exceeds α" at level δ (the
    binomial probability of so few errors, were the rate α). None: not even the first does."""
    risk, errors = np.asarray(risk, dtype=np.float64), np.asarray(errors, dtype=bool)
    # Fewer published items than this cannot reject even without an error, (1 - α)^n > δ: the
    # walk starts past them. Which τ those are depends on the risks alone, not on any label.
    fewest = math.ceil(math.log(delta) / math.log1p(-alpha))
    chosen = None
    for tau in grid:
        published = risk < tau
        n = int(published.sum())
        if n < fewest:
            continue
        if binom.cdf(int(errors[published].sum()), n, alpha) > delta:
            break
        chosen = tau
    return chosen


def _held(levels: np.ndarray, alarms: np.ndarray | None) -> np.ndarray:
    """The items the guard keeps for a moderator: rated mild while an expert says explicit."""
    if alarms is None:
        return np.zeros(len(levels), dtype=bool)
    return np.asarray(alarms, dtype=bool) & (np.asarray(levels) <= MILD_UP_TO)


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
    # Published unreviewed when the risk above the rating is below this (None: never), so that
    # the DCM rate among published items is at most α with probability 1 - publish_delta.
    publish_below: float | None = None
    publish_delta: float = PUBLISH_DELTA

    def levels(self, probs: np.ndarray, votes: np.ndarray | None = None) -> np.ndarray:
        """Class indices for items with these MLP probabilities (and voter ratings, -1 where
        the voter abstained)."""
        floor = None if not self.voter_floor or votes is None else np.asarray(votes)
        return raise_until(probs, self.effective_threshold, floor)

    def publishable(
        self, probs: np.ndarray, levels: np.ndarray, alarms: np.ndarray | None = None
    ) -> np.ndarray:
        """Which items, rated `levels` by this rule, it publishes without a moderator.
        `alarms`: the items some expert rates explicit (`explicit_alarms`), never published
        at PG or PG13."""
        if self.publish_below is None:
            return np.zeros(len(levels), dtype=bool)
        return (risk_above(probs, levels) < self.publish_below) & ~_held(levels, alarms)

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
    alarms: np.ndarray | None = None,
) -> BoundedRule:
    """The rule for `alpha` from calibration items the MLP did not learn from. `votes`: the
    voter's rating as a floor (-1 where it abstained); `alarms`: the items some expert rated
    explicit, which the publishing guard holds back. Raises ValueError when there are too few
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
    rule = BoundedRule(
        alpha=alpha,
        threshold=threshold,
        voter_floor=votes is not None,
        n=len(labels),
        severe_alpha=severe_alpha,
        severe_threshold=severe,
        n_explicit=explicit,
    )
    levels = rule.levels(probs, votes)
    risk = np.where(_held(levels, alarms), np.inf, risk_above(probs, levels))
    tau = publish_threshold(risk, levels < labels, alpha)
    return replace(rule, publish_below=tau)


def automation(
    published: np.ndarray, predicted: np.ndarray, labels: np.ndarray
) -> dict[str, float | int | None]:
    """How much skips review, and what it risks: the share of items published unreviewed, and
    the DCM and severe DCM rates among exactly those (None where there are none)."""
    published = np.asarray(published, dtype=bool)
    predicted, labels = np.asarray(predicted)[published], np.asarray(labels)[published]
    n = int(published.sum())
    among = rates(predicted, labels) if n else {"dcm_rate": None, "severe_dcm_rate": None}
    return {
        "share": float(published.mean()) if len(published) else 0.0,
        "published": n,
        "dcm_rate": among["dcm_rate"],
        "severe_dcm_rate": among["severe_dcm_rate"],
    }


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
    alarms: np.ndarray | None = None,
) -> list[dict[str, float | None]]:
    """For each α, the rates of `rule_for(α)` on these items (the curve of DCM against
    over-rating) and the share it publishes unreviewed."""
    rows = []
    for alpha in alphas:
        rule = rule_for(alpha)
        levels = rule.levels(probs, votes)
        published = rule.publishable(probs, levels, alarms)
        rows.append(
            {
                "alpha": alpha,
                **rates(levels, labels),
                "automation_share": float(published.mean()) if len(labels) else 0.0,
            }
        )
    return rows
