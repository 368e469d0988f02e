"""The bounded-DCM rule: conformal risk control over the MLP's mass above a rating."""

from __future__ import annotations

import numpy as np
import pytest

from rating_models.risk import (
    BoundedRule,
    automation,
    calibrate,
    crc_threshold,
    dcm_scores,
    explicit_alarms,
    mass_above,
    publish_threshold,
    raise_until,
    risk_above,
    tradeoff,
)


def test_the_mass_above_each_rating():
    above = mass_above(np.array([[0.5, 0.2, 0.1, 0.1, 0.1]]))
    assert np.allclose(above, [[0.5, 0.3, 0.2, 0.1, 0.0]])


def test_the_rule_raises_the_rating_until_the_mass_above_is_below_the_threshold():
    probs = np.array([[0.5, 0.2, 0.1, 0.1, 0.1], [0.9, 0.1, 0.0, 0.0, 0.0]])
    assert raise_until(probs, 0.25).tolist() == [2, 0]  # above: .5 .3 .2 | .1 .0
    assert raise_until(probs, 0.0).tolist() == [4, 4]  # nothing is below 0: XXX
    assert raise_until(probs, 0.25, floor=np.array([-1, 3])).tolist() == [2, 3]


def test_an_item_is_down_classed_exactly_when_its_score_is_below_the_threshold():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=400)
    labels = rng.integers(0, 5, size=400)
    scores = dcm_scores(probs, labels)
    for threshold in (0.05, 0.2, 0.5, 0.9):
        assert np.array_equal(raise_until(probs, threshold) < labels, scores < threshold)


def test_the_threshold_is_the_order_statistic_the_bound_allows():
    scores = np.array([0.9, 0.1, 0.4, 0.3, 0.2, np.inf, 0.6, 0.7, 0.8])  # n = 9
    # alpha 0.3: floor(0.3 * 10) - 1 = 2 errors allowed: the third smallest score.
    assert crc_threshold(scores, 0.3) == 0.3
    assert crc_threshold(scores, 0.05) is None  # 1 / (n + 1) = 0.1 > 0.05: no bound


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Items whose true rating is drawn from their own predicted probabilities: the MLP is
    perfectly calibrated, so the expected DCM rate of every λ is known exactly."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(5, 0.6), size=n)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    return probs, labels


def expected_dcm(probs: np.ndarray, threshold: float) -> float:
    """E[DCM] when the labels follow `probs`: the mass above the rule's rating."""
    levels = raise_until(probs, threshold)
    return float(np.mean(mass_above(probs)[np.arange(len(probs)), levels]))


def test_on_a_calibrated_synthetic_case_the_threshold_is_the_known_right_one():
    probs, labels = synthetic(20_000, seed=1)
    rule = calibrate(probs, labels, alpha=0.05)
    # The right λ: the largest whose expected DCM is 5%, found by bisection on the truth.
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if expected_dcm(probs, middle) <= 0.05 else (low, middle)
    assert rule.threshold == pytest.approx(low, abs=0.01)
    assert expected_dcm(probs, rule.threshold) == pytest.approx(0.05, abs=0.005)


@pytest.mark.parametrize("alpha", [0.01, 0.02, 0.03, 0.05])
def test_new_items_keep_the_dcm_rate_within_alpha(alpha):
    probs, labels = synthetic(4_000, seed=2)
    fresh_probs, fresh_labels = synthetic(20_000, seed=3)
    rule = calibrate(probs, labels, alpha=alpha)
    achieved = float(np.mean(rule.levels(fresh_probs) < fresh_labels))
    assert achieved <= alpha + 0.005
    assert achieved >= alpha - 0.01  # and not far more restrictive than it needs to be


def test_the_voter_floor_and_the_severe_bound_only_make_the_rule_more_restrictive():
    probs, labels = synthetic(4_000, seed=4)
    votes = np.where(np.random.default_rng(5).random(4_000) < 0.5, labels, -1)  # a good voter
    plain = calibrate(probs, labels, alpha=0.05)
    floored = calibrate(probs, labels, alpha=0.05, votes=votes)
    severe = calibrate(probs, labels, alpha=0.05, severe_alpha=0.005)
    # The floor prevents some errors, so the threshold may rise: fewer items over-rated.
    assert floored.threshold >= plain.threshold
    assert severe.severe_threshold is not None and severe.n_explicit > 0
    assert severe.effective_threshold <= plain.threshold
    explicit = labels >= 3
    assert np.mean(severe.levels(probs)[explicit] <= 1) <= 0.005 + 1e-9


def test_too_few_items_for_alpha_is_a_clear_error():
    probs, labels = synthetic(20, seed=6)
    with pytest.raises(ValueError, match=r"cannot bound the DCM rate at 1\.0%: at least 99"):
        calibrate(probs, labels, alpha=0.01)


def test_the_rule_survives_the_manifest():
    probs, labels = synthetic(2_000, seed=7)
    rule = calibrate(probs, labels, alpha=0.03, severe_alpha=0.01)
    again = BoundedRule.from_manifest(rule.to_manifest())
    assert again == rule


def test_the_tradeoff_curve_falls_in_dcm_and_rises_in_over_rating():
    probs, labels = synthetic(4_000, seed=8)
    test_probs, test_labels = synthetic(4_000, seed=9)
    rows = tradeoff(
        test_probs,
        test_labels,
        lambda a: calibrate(probs, labels, alpha=a),
        [0.01, 0.03, 0.1, 0.2],
    )
    dcm = [r["dcm_rate"] for r in rows]
    over = [r["over_rating_rate"] for r in rows]
    assert dcm == sorted(dcm) and over == sorted(over, reverse=True)
    assert all(0 <= r["automation_share"] <= 1 for r in rows)


def calibrated_risks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Items whose down-class risk is uniform on [0, 0.2] and true: an item with risk r is
    down-classed with probability r. Among items with risk < τ the DCM rate is τ / 2."""
    rng = np.random.default_rng(seed)
    risk = rng.uniform(0.0, 0.2, size=n)
    return risk, rng.random(n) < risk


def test_publishing_stops_where_the_dcm_among_published_items_would_pass_alpha():
    risk, errors = calibrated_risks(20_000, seed=10)
    tau = publish_threshold(risk, errors, 0.03)
    # The right τ is 2α = 0.06; the test at δ = 10% stops a little before it.
    assert 0.045 < tau <= 0.06
    fresh_risk, fresh_errors = calibrated_risks(50_000, seed=11)
    published = fresh_risk < tau
    assert fresh_errors[published].mean() <= 0.03


def test_items_that_are_all_wrong_are_never_published():
    risk = np.linspace(0.0, 0.5, 500)
    assert publish_threshold(risk, np.ones(500, dtype=bool), 0.03) is None


def test_too_few_items_publish_nothing_rather_than_guess():
    # 20 items without a single error cannot show a rate below 3% at 90% confidence.
    risk, errors = np.linspace(0.0, 0.01, 20), np.zeros(20, dtype=bool)
    assert publish_threshold(risk, errors, 0.03) is None
    assert publish_threshold(np.linspace(0.0, 0.01, 200), np.zeros(200, dtype=bool), 0.03)


@pytest.mark.parametrize("alpha", [0.02, 0.05])
def test_the_rule_publishes_new_items_with_their_dcm_within_alpha(alpha):
    probs, labels = synthetic(6_000, seed=12)
    fresh_probs, fresh_labels = synthetic(20_000, seed=13)
    rule = calibrate(probs, labels, alpha=alpha)
    assert rule.publish_below is not None and rule.publish_below <= rule.threshold
    levels = rule.levels(fresh_probs)
    published = rule.publishable(fresh_probs, levels)
    assert np.array_equal(published, risk_above(fresh_probs, levels) < rule.publish_below)
    figures = automation(published, levels, fresh_labels)
    assert 0 < figures["share"] < 1 and figures["published"] == published.sum()
    assert figures["dcm_rate"] <= alpha


def test_automation_among_no_published_items_has_no_rate():
    figures = automation(np.zeros(3, dtype=bool), np.zeros(3), np.ones(3))
    assert figures == {"share": 0.0, "published": 0, "dcm_rate": None, "severe_dcm_rate": None}


def test_an_item_an_expert_rates_explicit_is_never_published_at_pg_or_pg13():
    probs, labels = synthetic(6_000, seed=14)
    rule = calibrate(probs, labels, alpha=0.05)
    levels = rule.levels(probs)
    ratings = np.full((len(levels), 2), -1)  # two experts; the second says X on a third
    ratings[::3, 1] = 3
    alarms = explicit_alarms(ratings)
    assert alarms.sum() == 2_000
    guarded = rule.publishable(probs, levels, alarms)
    assert not guarded[alarms & (levels <= 1)].any()
    plain = rule.publishable(probs, levels)
    assert np.array_equal(guarded[~alarms], plain[~alarms])  # the others as before
    assert np.array_equal(guarded[levels >= 2], plain[levels >= 2])  # rated R or above too


def test_calibrating_with_the_guard_walks_over_the_items_it_lets_through():
    probs, labels = synthetic(6_000, seed=15)
    # An alarm on every explicit item rated mild: the guard holds back exactly the severe errors.
    alarms = labels >= 3
    rule = calibrate(probs, labels, alpha=0.03, alarms=alarms)
    levels = rule.levels(probs)
    published = rule.publishable(probs, levels, alarms)
    assert not (published & (labels >= 3) & (levels <= 1)).any()
    assert automation(published, levels, labels)["dcm_rate"] <= 0.03
