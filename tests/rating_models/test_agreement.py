"""agreement and per_pair against published values, the libraries they stand in for, and the
bootstrap's promises."""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from rating_models.agreement import (
    Agreement,
    _interval,
    _kappas,
    _ordinal_alphas,
    agreement,
    per_pair,
)

PG, PG13, R, X, XXX, BLOCKED = range(6)
nan = np.nan

# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
# Communication, University of Pennsylvania (repository.upenn.edu/asc_papers/43), section C:
# four observers, twelve units, missing values; published alpha nominal 0.743, ordinal 0.815,
# interval 0.849. The same data is Krippendorff (2004), Content Analysis, 2nd ed., p. 230.
KRIPPENDORFF_2011_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# The R irr package's `anxiety` data (Gamer, Lemon, Fellows & Singh), raters 2 and 3 of 20
# subjects, as transcribed with irr's output in statsmodels'
# statsmodels/stats/tests/test_inter_rater.py (test_cohens_kappa_irr).
ANXIETY_RATER2 = [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4]
ANXIETY_RATER3 = [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]


def coincidences(units: list[list[float]]) -> np.ndarray:
    """Krippendorff's coincidence matrix of observers x units data with NaN for missing values:
    each unit with m >= 2 values adds 1 / (m - 1) for every ordered pair of its values."""
    values = sorted({v for row in units for v in row if not np.isnan(v)})
    matrix = np.zeros((len(values), len(values)))
    for unit in zip(*units, strict=True):
        coded = [values.index(v) for v in unit if not np.isnan(v)]
        for i, c in enumerate(coded):
            for j, k in enumerate(coded):
                if i != j:
                    matrix[c, k] += 1 / (len(coded) - 1)
    return matrix


def doubled_reviews(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two moderators who mostly agree and otherwise miss by one step."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 6, n)
    second = np.clip(first + rng.choice([-1, 0, 0, 0, 1], n), 0, 5)
    return first, second


def test_ordinal_alpha_reproduces_krippendorffs_published_example():
    ordinal = _ordinal_alphas(coincidences(KRIPPENDORFF_2011_C))
    assert round(float(ordinal), 3) == 0.815
    # The package `agreement` calls gives the same published value on the same data.
    library = krippendorff.alpha(KRIPPENDORFF_2011_C, level_of_measurement="ordinal")
    assert round(library, 3) == 0.815
    assert ordinal == pytest.approx(library, abs=1e-12)


def test_alpha_of_two_raters_reproduces_krippendorffs_binary_example():
    """Krippendorff (2004), Content Analysis, 2nd ed., p. 224, the same example as Krippendorff
    (2011) section A: two observers, ten units, 60 % agreement and alpha = 0.095 (transcribed in
    dkpro-statistics, Krippendorff2004Test.testDichotomy). With two values every disagreement
    differs equally, so the ordinal alpha equals the nominal one published."""
    result = agreement([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 1, 0, 1, 0, 0], n_classes=2)
    assert result.exact.value == pytest.approx(0.6)
    assert round(result.alpha.value, 3) == 0.095


def test_kappa_reproduces_irr_squared_weights_on_anxiety():
    """R: irr::kappa2(anxiety[, 2:3], "squared") gives Kappa = 0.2520325 (recorded in
    statsmodels' test_inter_rater.py). irr turns ratings into factors of the levels observed,
    here 1, 2, 3, 4 and 6, so its squared weights run over those five ranks."""
    rank = {level: i for i, level in enumerate([1, 2, 3, 4, 6])}
    result = agreement(
        [rank[r] for r in ANXIETY_RATER2], [rank[r] for r in ANXIETY_RATER3], n_classes=5
    )
    assert result.kappa.value == pytest.approx(0.2520325, abs=1e-7)


def test_kappa_reproduces_the_metrics_package_example():
    """R: Metrics::ScoreQuadraticWeightedKappa(c(1, 4, 5, 5, 2, 1), c(2, 2, 4, 5, 3, 3), 1, 5)
    prints 0.56 (the package's documented example; rdrr.io/cran/Metrics, example output)."""
    result = agreement([0, 3, 4, 4, 1, 0], [1, 1, 3, 4, 2, 2], n_classes=5)
    assert result.kappa.value == pytest.approx(0.56)


@pytest.mark.parametrize("seed", range(6))
def test_numpy_kappa_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    first = rng.integers(0, 6, n)
    second = np.clip(first + rng.integers(-3, 4, n), 0, 5)
    confusion = np.zeros((6, 6))
    np.add.at(confusion, (first, second), 1)
    expected = cohen_kappa_score(first, second, weights="quadratic", labels=list(range(6)))
    assert _kappas(confusion) == pytest.approx(expected, abs=1e-12)
    assert agreement(first, second, resamples=0).kappa.value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_numpy_ordinal_alpha_equals_krippendorff(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    # Some data sets leave classes unused, which moves every midrank after them.
    classes = rng.choice(6, size=int(rng.integers(2, 7)), replace=False)
    first = rng.choice(classes, n)
    second = np.where(rng.random(n) < 0.6, first, rng.choice(classes, n))
    confusion = np.zeros((6, 6))
    np.add.at(confusion, (first, second), 1)
    expected = krippendorff.alpha(
        reliability_data=np.stack([first, second]),
        level_of_measurement="ordinal",
        value_domain=list(range(6)),
    )
    assert _ordinal_alphas(confusion + confusion.T) == pytest.approx(expected, abs=1e-12)
    assert agreement(first, second, resamples=0).alpha.value == pytest.approx(expected, abs=1e-12)


def test_interval_contains_the_point_estimate():
    result = agreement(*doubled_reviews(400, seed=1))
    for estimate in (result.exact, result.kappa, result.alpha):
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.low < estimate.high


def test_same_seed_gives_the_same_intervals_and_another_seed_others():
    first, second = doubled_reviews(200, seed=2)
    assert agreement(first, second, seed=7) == agreement(first, second, seed=7)
    assert agreement(first, second, seed=7).kappa != agreement(first, second, seed=8).kappa


def test_interval_narrows_with_more_pairs():
    few = agreement(*doubled_reviews(100, seed=3))
    many = agreement(*doubled_reviews(2000, seed=3))
    for name in ("exact", "kappa", "alpha"):
        small, large = getattr(few, name), getattr(many, name)
        assert large.high - large.low < (small.high - small.low) / 2, name


def test_zero_pairs_give_none_everywhere():
    result = agreement([], [])
    assert result.n == 0
    for estimate in (result.exact, result.kappa, result.alpha):
        assert (estimate.value, estimate.low, estimate.high) == (None, None, None)


def test_one_class_everywhere_leaves_kappa_and_alpha_undefined_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = agreement([XXX] * 50, [XXX] * 50)
    assert (result.exact.value, result.exact.low, result.exact.high) == (1.0, 1.0, 1.0)
    assert (result.kappa.value, result.kappa.low, result.kappa.high) == (None, None, None)
    assert (result.alpha.value, result.alpha.low, result.alpha.high) == (None, None, None)


def test_undefined_resamples_are_skipped_not_counted():
    # One disagreement in 100: about a third of the resamples miss it and have one class only.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = agreement([R] * 100, [R] * 99 + [X])
    for estimate in (result.kappa, result.alpha):
        assert estimate.low is not None and np.isfinite(estimate.low)
        assert estimate.low <= estimate.value <= estimate.high


def test_interval_is_none_when_too_few_resamples_are_defined():
    mostly_undefined = np.array([nan] * 6 + [0.1, 0.2, 0.3, 0.4])
    assert _interval(mostly_undefined, 0.95) == (None, None)
    assert _interval(np.array([]), 0.95) == (None, None)
    assert agreement([PG, X], [PG, X], resamples=0).kappa.low is None


def test_blocked_is_the_top_of_the_ordinal_scale():
    first = [PG, PG13, R, X, XXX, BLOCKED] * 5
    near = agreement(first, [*first[:-1], XXX])  # one Blocked item called XXX
    far = agreement(first, [*first[:-1], PG])  # the same item called PG
    assert near.exact.value == far.exact.value
    assert near.kappa.value > far.kappa.value
    assert near.alpha.value > far.alpha.value


def test_rejects_ratings_off_the_scale_and_unpaired_ratings():
    with pytest.raises(ValueError, match="class indices"):
        agreement([PG, 6], [PG, PG])
    with pytest.raises(ValueError, match="class indices"):
        agreement([PG, -1], [PG, PG])
    with pytest.raises(ValueError, match="first ratings"):
        agreement([PG, PG], [PG])


def test_per_pair_groups_rows_by_key():
    alice_bob = ("alice", "bob")
    alice_charlie = ("alice", "charlie")
    rows = [
        (alice_bob, PG, PG),
        (alice_charlie, X, XXX),
        (alice_bob, R, X),
        (alice_charlie, XXX, XXX),
        (alice_bob, BLOCKED, BLOCKED),
    ]
    result = per_pair(rows, resamples=50)
    assert list(result) == [alice_bob, alice_charlie]
    assert result[alice_bob] == agreement([PG, R, BLOCKED], [PG, X, BLOCKED], resamples=50)
    assert result[alice_charlie] == agreement([X, XXX], [XXX, XXX], resamples=50)
    assert isinstance(result[alice_bob], Agreement)
    assert result[alice_charlie].n == 2
