"""The label-error pass: confident learning's flags, served highest down-class risk first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rating_models.examples import load_examples, rated
from rating_models.experts import build_expert
from rating_models.label_errors import (
    LabelIssue,
    find_label_errors,
    plant_label_errors,
    recall_at,
)
from rating_models.ratings import Rating
from rating_models.stacking import assign_folds, out_of_fold

PG, PG13, R, X, XXX = (r.index for r in Rating)
TRAIN = Path(__file__).resolve().parents[2] / "data" / "ratings" / "train.jsonl"


def peaked(rating: int, top: float) -> np.ndarray:
    """Probabilities with `top` on `rating` and the rest spread evenly."""
    row = np.full(5, (1 - top) / 4)
    row[rating] = top
    return row


def corpus(
    rng: np.random.Generator, per_rating: int = 40
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Items whose labels agree with confident probabilities."""
    labels = np.repeat(np.arange(5), per_rating)
    probs = np.stack([peaked(y, rng.uniform(0.7, 0.95)) for y in labels])
    ids = [f"item-{i}" for i in range(len(labels))]
    return ids, labels, probs


def with_errors(
    ids: list[str], labels: np.ndarray, probs: np.ndarray, errors: list[tuple[str, int, int, float]]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """`errors`: (id, label given, rating the probabilities say, how sure they are)."""
    ids = ids + [e[0] for e in errors]
    labels = np.concatenate([labels, [e[1] for e in errors]])
    probs = np.vstack([probs, *[peaked(e[2], e[3]) for e in errors]])
    return ids, labels, probs


# An explicit item labelled PG lets it slip down; a PG item labelled R is a nuisance, though
# its label is even less likely.
SLIPPED = [("x-as-pg", PG, X, 0.9), ("xxx-as-pg", PG, XXX, 0.88), ("r-as-pg13", PG13, R, 0.9)]
OVER_RATED = [("pg-as-r", R, PG, 0.99), ("pg-as-x", X, PG, 0.99), ("pg13-as-xxx", XXX, PG13, 0.99)]


def test_planted_errors_are_found_and_the_ones_that_slip_down_come_first():
    ids, labels, probs = with_errors(*corpus(np.random.default_rng(0)), errors=SLIPPED + OVER_RATED)

    issues = find_label_errors(ids, labels, probs)

    found = [i.id for i in issues]
    assert set(found) >= {e[0] for e in SLIPPED + OVER_RATED}
    assert found[:3] == ["x-as-pg", "xxx-as-pg", "r-as-pg13"]  # by down-class risk
    risks = [i.down_class_risk for i in issues]
    assert risks == sorted(risks, reverse=True)


def test_cleanlab_order_puts_the_least_likely_label_first_whichever_way_it_errs():
    ids, labels, probs = with_errors(*corpus(np.random.default_rng(0)), errors=SLIPPED + OVER_RATED)

    issues = find_label_errors(ids, labels, probs, order="self_confidence")

    assert {i.id for i in issues[:3]} == {e[0] for e in OVER_RATED}
    confidences = [i.self_confidence for i in issues]
    assert confidences == sorted(confidences)


def test_an_issue_says_the_given_and_likely_ratings_and_the_mass_above_the_label():
    ids, labels, probs = with_errors(*corpus(np.random.default_rng(0)), errors=SLIPPED)

    issue = next(i for i in find_label_errors(ids, labels, probs) if i.id == "r-as-pg13")

    assert issue == LabelIssue(
        id="r-as-pg13",
        given=PG13,
        likely=R,
        self_confidence=pytest.approx(0.025),
        down_class_risk=pytest.approx(0.9 + 0.025 + 0.025),  # R, X, XXX
    )


def test_equal_risks_go_to_the_lower_self_confidence_first():
    ids, labels, probs = corpus(np.random.default_rng(1))
    # Both have mass 0.96 above PG13; the first leaves PG13 itself more.
    tied = [("more-sure", PG13, R, 0.96), ("less-sure", PG13, X, 0.96)]
    ids, labels, probs = with_errors(ids, labels, probs, tied)
    probs[-2] = [0.0, 0.04, 0.96, 0.0, 0.0]
    probs[-1] = [0.03, 0.01, 0.0, 0.96, 0.0]

    found = [i.id for i in find_label_errors(ids, labels, probs)]

    assert found.index("less-sure") < found.index("more-sure")


def test_rows_that_do_not_sum_to_one_are_rescaled():
    ids, labels, probs = with_errors(*corpus(np.random.default_rng(2)), errors=SLIPPED)
    scale = np.random.default_rng(3).uniform(0.5, 3.0, size=(len(probs), 1))

    rescaled = find_label_errors(ids, labels, probs * scale)
    summed = find_label_errors(ids, labels, probs)

    assert [i.id for i in rescaled] == [i.id for i in summed]
    assert [i.down_class_risk for i in rescaled] == pytest.approx(
        [i.down_class_risk for i in summed]
    )


def test_no_items_no_issues():
    assert find_label_errors([], np.zeros(0, dtype=int), np.zeros((0, 5))) == []


# cleanlab warns that it may miss errors in ratings with fewer than two items: here, none.
@pytest.mark.filterwarnings("ignore:May not flag all label issues:UserWarning")
def test_a_rating_no_item_carries_is_no_obstacle():
    ids, labels, probs = corpus(np.random.default_rng(4))
    keep = labels <= R  # no X, no XXX
    ids = [i for i, k in zip(ids, keep, strict=True) if k]
    ids, labels, probs = with_errors(ids, labels[keep], probs[keep], [SLIPPED[2]])

    assert "r-as-pg13" in [i.id for i in find_label_errors(ids, labels, probs)]


def test_a_single_rating_is_refused_with_what_is_missing():
    labels = np.zeros(10, dtype=int)
    probs = np.tile(peaked(PG, 0.9), (10, 1))

    with pytest.raises(ValueError, match="at least two ratings, every item is PG"):
        find_label_errors([str(i) for i in range(10)], labels, probs)


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        (np.array([0, 1]), np.ones((3, 5)), r"probs must be \(2, 5\)"),
        (np.array([0, 7]), np.ones((2, 5)), "class indices 0-4, got 7"),
        (np.array([0.5, 1.0]), np.ones((2, 5)), "class indices"),
        (np.array([0, 1]), np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]), "row 1 sums to 0"),
        (np.array([0, 1]), np.array([[1, 0, 0, 0, np.nan], [1, 0, 0, 0, 0]]), "finite"),
    ],
)
def test_inputs_that_do_not_fit_are_refused(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        find_label_errors(["a", "b"], labels, probs)


def test_planting_relabels_only_items_of_the_ratings_asked():
    labels = np.array([PG, R, X, PG13, XXX, R, PG])

    planted, rows = plant_label_errors(labels, 3, from_ratings=(R, X, XXX), to=PG, seed=0)

    assert set(labels[rows]) <= {R, X, XXX} and len(set(rows)) == 3
    assert (planted[rows] == PG).all()
    unchanged = np.setdiff1d(np.arange(len(labels)), rows)
    assert (planted[unchanged] == labels[unchanged]).all()


# -- the acceptance test: errors planted in the training split -----------------------------------

# Measured (bench/label_errors.py, 5 seeds, n-gram out of 5 folds): recall at 100 is 0.49 on
# average, between 0.30 and 0.65 (0.65 at this test's seed 0), where a random order finds
# 100 / 6,013 of them (0.017); at 50 it is 0.65 here against 0.30 for cleanlab's own order.
PLANTED = 20
TOP_K = 100
RECALL_FLOOR = 0.3


@pytest.mark.skipif(not TRAIN.is_file(), reason="the rating corpus's training split is absent")
def test_errors_planted_in_the_training_split_are_near_the_top_of_the_list():
    examples = rated(load_examples(TRAIN))
    labels = np.array([e.rating.index for e in examples])
    planted, rows = plant_label_errors(labels, PLANTED, from_ratings=(R, X, XXX), to=PG, seed=0)
    copy = [replace(e, label=Rating.from_index(y)) for e, y in zip(examples, planted, strict=True)]
    folds = assign_folds(copy, 5, seed=0)
    probs = out_of_fold(build_expert("ngram", "ngram"), copy, folds, early_stopping=[]).probs
    ids, truth = [e.id for e in copy], {examples[i].id for i in rows}

    issues = find_label_errors(ids, planted, probs)

    assert recall_at(issues, truth, TOP_K) >= RECALL_FLOOR
    # The planted errors slip down: served by down-class risk they come before the over-rated
    # labels that cleanlab's order puts first.
    by_confidence = find_label_errors(ids, planted, probs, order="self_confidence")
    assert recall_at(issues, truth, 50) > recall_at(by_confidence, truth, 50)
