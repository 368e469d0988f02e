"""Agreement between two moderators who rated the same items blind (double review).

Ratings are class indices on one ordinal scale: PG 0, PG13 1, R 2, X 3, XXX 4 and Blocked 5,
the most restrictive decision at the top. For each pair of moderators `agreement` reports

- `exact`: the share of items both rated the same;
- `kappa`: Cohen's kappa with quadratic weights (sklearn), so PG against Blocked costs 25 times
  what a one-step miss costs;
- `alpha`: Krippendorff's alpha at the ordinal level (the `krippendorff` package), which weighs a
  disagreement by how many ratings fall between the two values rather than by their distance.

Each comes with a percentile bootstrap interval over the pairs. Kappa and alpha are undefined
when every rating is the same class (no variation to agree about); they come out as None, never
NaN and never with a warning, and the interval skips resamples where they are undefined.

The three figures depend on the pairs only through their confusion matrix, so resampling n
pairs with replacement is drawing the matrix's cells from Multinomial(n, cells / n). A thousand
resamples are then a thousand 6x6 matrices, and `_kappas` and `_ordinal_alphas` compute them
all at once in numpy (a few milliseconds, against about a second for a thousand library calls);
the tests hold both equal to sklearn and `krippendorff.alpha`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

from rating_models.ratings import NUM_CLASSES

# The five ratings, then Blocked as the most restrictive decision.
REVIEW_CLASSES = NUM_CLASSES + 1

# Below this share of defined resamples an interval would describe a few lucky draws.
_MIN_DEFINED_SHARE = 0.5

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Estimate:
    """A figure and its bootstrap percentile interval; None where undefined."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Agreement:
    """Two raters' agreement over `n` pairs."""

    n: int
    exact: Estimate
    kappa: Estimate
    alpha: Estimate


_UNDEFINED = Estimate(None, None, None)


def agreement(
    first: Sequence[int],
    second: Sequence[int],
    *,
    n_classes: int = REVIEW_CLASSES,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Agreement:
    """Exact agreement, quadratic-weighted kappa and ordinal alpha of two raters' ratings.

    `first[i]` and `second[i]` are the two ratings of item i, class indices 0..n_classes-1.
    Intervals are bootstrap percentiles at `confidence` from `resamples` resamples of the pairs,
    drawn by a numpy Generator seeded with `seed`; they are None with no resamples, or when
    fewer than half the resamples leave the figure defined.
    """
    first_array = np.asarray(first, dtype=np.int64).reshape(-1)
    second_array = np.asarray(second, dtype=np.int64).reshape(-1)
    if first_array.shape != second_array.shape:
        raise ValueError(f"{len(first_array)} first ratings but {len(second_array)} second")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, not {n_classes}")
    ratings = np.concatenate([first_array, second_array])
    if np.any((ratings < 0) | (ratings >= n_classes)):
        raise ValueError(f"ratings must be class indices 0-{n_classes - 1}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if resamples < 0:
        raise ValueError(f"resamples must not be negative, not {resamples}")

    n = len(first_array)
    if n == 0:
        return Agreement(n=0, exact=_UNDEFINED, kappa=_UNDEFINED, alpha=_UNDEFINED)

    confusion = np.bincount(first_array * n_classes + second_array, minlength=n_classes**2)
    confusion = confusion.reshape(n_classes, n_classes)  # (first, second)
    # Kappa's and alpha's chance terms are both zero exactly when one class holds every rating.
    defined = np.count_nonzero(np.bincount(ratings, minlength=n_classes)) >= 2
    kappa = alpha = None
    if defined:
        kappa = float(
            cohen_kappa_score(
                first_array, second_array, weights="quadratic", labels=list(range(n_classes))
            )
        )
        alpha = float(
            krippendorff.alpha(
                reliability_data=np.stack([first_array, second_array]),
                level_of_measurement="ordinal",
                value_domain=list(range(n_classes)),
            )
        )

    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, confusion.ravel() / n, size=resamples)
    drawn = drawn.reshape(resamples, n_classes, n_classes)
    exact_drawn = np.trace(drawn, axis1=-2, axis2=-1) / n
    kappa_drawn = _kappas(drawn)
    alpha_drawn = _ordinal_alphas(drawn + drawn.swapaxes(-2, -1))

    return Agreement(
        n=n,
        exact=_estimate(float(np.trace(confusion)) / n, exact_drawn, confidence),
        kappa=_estimate(kappa, kappa_drawn, confidence),
        alpha=_estimate(alpha, alpha_drawn, confidence),
    )


def per_pair(
    rows: Iterable[tuple[Key, int, int]],
    *,
    n_classes: int = REVIEW_CLASSES,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[Key, Agreement]:
    """`agreement` for each key (e.g. a (moderator_a, moderator_b) tuple) of (key, first, second)
    rows, keys in the order they first appear."""
    grouped: dict[Key, tuple[list[int], list[int]]] = {}
    for key, first, second in rows:
        firsts, seconds = grouped.setdefault(key, ([], []))
        firsts.append(first)
        seconds.append(second)
    return {
        key: agreement(
            firsts,
            seconds,
            n_classes=n_classes,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
        for key, (firsts, seconds) in grouped.items()
    }


def _kappas(confusion: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa of each (..., k, k) confusion matrix; NaN where undefined.

    Rows are the first rater, columns the second; chance is the product of the two margins.
    """
    k = confusion.shape[-1]
    weights = np.subtract.outer(np.arange(k), np.arange(k)) ** 2  # (k, k)
    n = confusion.sum(axis=(-2, -1))
    observed = (confusion * weights).sum(axis=(-2, -1))
    chance = np.einsum("...i,ij,...j->...", confusion.sum(-1), weights, confusion.sum(-2)) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - observed / chance


def _ordinal_alphas(coincidences: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal alpha of each (..., k, k) coincidence matrix; NaN where undefined.

    Krippendorff's ordinal difference of values c <= k, (n_c + ... + n_k - (n_c + n_k) / 2)^2,
    is the squared distance between their midranks in the pooled values, cumsum(n) - n / 2, so
    alpha = 1 - (n.. - 1) sum o_ck d_ck / sum n_c n_k d_ck. Two raters' coincidences are their
    confusion matrix plus its transpose.
    """
    counts = coincidences.sum(-1)  # (..., k) values pooled over raters
    total = counts.sum(-1)
    midranks = np.cumsum(counts, axis=-1) - counts / 2
    differences = (midranks[..., :, None] - midranks[..., None, :]) ** 2  # (..., k, k)
    observed = (coincidences * differences).sum(axis=(-2, -1))
    expected = np.einsum("...c,...ck,...k->...", counts, differences, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - (total - 1) * observed / expected


def _estimate(value: float | None, drawn: np.ndarray, confidence: float) -> Estimate:
    if value is None:
        return _UNDEFINED
    low, high = _interval(drawn, confidence)
    return Estimate(value, low, high)


def _interval(drawn: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval over the defined (finite) resamples; None when too few are."""
    defined = drawn[np.isfinite(drawn)]
    if len(drawn) == 0 or len(defined) < _MIN_DEFINED_SHARE * len(drawn):
        return None, None
    low, high = np.quantile(defined, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
