"""rating_report against small hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from rating_models.metrics import rating_report

PG, PG13, R, X, XXX = range(5)

# A small case computed by hand:
#   true PG   -> PG, PG13          true PG13 -> PG       true R -> R
#   true X    -> PG13              true XXX  -> R, XXX
Y_TRUE = [PG, PG, PG13, R, X, XXX, XXX]
Y_PRED = [PG, PG13, PG, R, PG13, R, XXX]


@pytest.fixture(scope="module")
def report():
    return rating_report(Y_TRUE, Y_PRED)


def test_confusion_rows_are_true_and_columns_predicted():
    confusion = rating_report([X], [PG13])["confusion"]
    assert confusion[X][PG13] == 1
    assert confusion[PG13][X] == 0


def test_confusion_of_hand_case(report):
    assert report["confusion"] == [
        [1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 1],
    ]


def test_n_and_accuracy(report):
    assert report["n"] == 7
    assert report["accuracy"] == pytest.approx(3 / 7)


def test_dcm_count_counts_only_predictions_below_the_truth():
    # One down-class error (R rated PG13) and one up-class error (PG rated X).
    report = rating_report([R, PG, X], [PG13, X, X])
    assert report["dcm_count"] == 1


def test_dcm_count_of_hand_case(report):
    # PG13->PG, X->PG13, XXX->R
    assert report["dcm_count"] == 3


def test_dcm_rate_is_over_all_items(report):
    assert report["dcm_rate"] == pytest.approx(3 / 7)


def test_perfect_predictions_have_no_dcm():
    report = rating_report([PG, R, XXX], [PG, R, XXX])
    assert report["dcm_count"] == 0
    assert report["dcm_rate"] == 0.0
    assert report["severe_dcm_count"] == 0


def test_dcm_matrix_is_the_strictly_lower_triangle(report):
    assert report["dcm_matrix"] == [
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
    ]
    assert sum(map(sum, report["dcm_matrix"])) == report["dcm_count"]


def test_dcm_matrix_excludes_the_diagonal_and_up_class_errors():
    report = rating_report([R, PG], [R, XXX])
    assert report["dcm_matrix"] == [[0] * 5 for _ in range(5)]


def test_severe_dcm_counts_true_explicit_rated_mild(report):
    # X->PG13 is severe; XXX->R is DCM but not severe.
    assert report["severe_dcm_count"] == 1
    assert report["explicit_support"] == 3
    assert report["severe_dcm_rate"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("true", "pred"), [(X, PG), (X, PG13), (XXX, PG), (XXX, PG13)])
def test_severe_dcm_is_explicit_rated_pg_or_pg13(true, pred):
    report = rating_report([true], [pred])
    assert report["severe_dcm_count"] == 1
    assert report["severe_dcm_rate"] == 1.0


def test_true_x_rated_r_is_dcm_but_not_severe():
    report = rating_report([X], [R])
    assert report["dcm_count"] == 1
    assert report["severe_dcm_count"] == 0
    assert report["severe_dcm_rate"] == 0.0


def test_true_r_rated_pg_is_dcm_but_not_severe():
    report = rating_report([R], [PG])
    assert report["dcm_count"] == 1
    assert report["severe_dcm_count"] == 0


def test_severe_dcm_rate_is_over_explicit_support_only():
    # Two explicit items (one severe), three mild ones correctly rated.
    report = rating_report([PG, PG, PG13, X, XXX], [PG, PG, PG13, PG, XXX])
    assert report["explicit_support"] == 2
    assert report["severe_dcm_rate"] == pytest.approx(1 / 2)


def test_severe_dcm_rate_is_none_without_explicit_items():
    report = rating_report([PG, PG13, R], [PG, PG, PG])
    assert report["explicit_support"] == 0
    assert report["severe_dcm_rate"] is None


def test_per_class_accuracy_equals_recall_and_support_counts(report):
    per_class = report["per_class"]
    assert list(per_class) == ["PG", "PG13", "R", "X", "XXX"]
    expected = {"PG": (0.5, 2), "PG13": (0.0, 1), "R": (1.0, 1), "X": (0.0, 1), "XXX": (0.5, 2)}
    for label, (accuracy, support) in expected.items():
        assert per_class[label]["accuracy"] == pytest.approx(accuracy)
        assert per_class[label]["recall"] == pytest.approx(accuracy)
        assert per_class[label]["support"] == support


def test_per_class_precision_of_hand_case(report):
    # Predicted R twice (R, XXX): precision 1/2. Predicted PG twice (PG, PG13): 1/2.
    assert report["per_class"]["R"]["precision"] == pytest.approx(0.5)
    assert report["per_class"]["PG"]["precision"] == pytest.approx(0.5)
    assert report["per_class"]["XXX"]["precision"] == pytest.approx(1.0)


def test_per_class_accuracy_is_none_for_a_class_without_items():
    report = rating_report([PG, PG], [PG, X])
    assert report["per_class"]["X"]["support"] == 0
    assert report["per_class"]["X"]["accuracy"] is None
    assert report["per_class"]["X"]["precision"] == 0.0


def test_macro_f1_matches_sklearn_over_all_five_classes():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=60)  # XXX never appears in the truth
    y_pred = rng.integers(0, 5, size=60)
    expected = f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2, 3, 4], zero_division=0)
    assert rating_report(y_true, y_pred)["macro_f1"] == pytest.approx(expected)


def test_macro_f1_of_hand_case_averages_over_five_classes(report):
    # F1 per class: PG 1/2, PG13 0, R 2/3, X 0, XXX 2/3.
    assert report["macro_f1"] == pytest.approx((1 / 2 + 0 + 2 / 3 + 0 + 2 / 3) / 5)


def test_report_is_plain_json_values(report):
    assert json.loads(json.dumps(report)) == report


def test_mismatched_lengths_raise_value_error():
    with pytest.raises(ValueError, match=r"3 true ratings but 2 predictions"):
        rating_report([PG, R, X], [PG, R])


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [([PG, 5], [PG, PG]), ([PG, PG], [PG, 5]), ([PG], [-1]), ([-1], [PG]), ([16], [PG])],
)
def test_out_of_range_indices_raise_value_error(y_true, y_pred):
    with pytest.raises(ValueError, match=r"class indices 0-4"):
        rating_report(y_true, y_pred)


def test_empty_input_gives_a_report_of_nones_and_zeros():
    report = rating_report([], [])
    assert report["n"] == 0
    assert report["accuracy"] is None
    assert report["macro_f1"] is None
    assert report["dcm_count"] == 0
    assert report["dcm_rate"] is None
    assert report["severe_dcm_rate"] is None
    assert report["confusion"] == [[0] * 5 for _ in range(5)]
    assert report["per_class"]["PG"] == {
        "precision": None,
        "recall": None,
        "f1": None,
        "accuracy": None,
        "support": 0,
    }


def test_bootstrap_intervals_contain_the_point_figures_and_are_reproducible():
    from rating_models.metrics import bootstrap_intervals

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 5, size=300))
    report = rating_report(y_true, y_pred)
    intervals = bootstrap_intervals(y_true, y_pred, samples=200, seed=1)
    for key in ("macro_f1", "dcm_rate", "severe_dcm_rate"):
        low, high = intervals[key]
        assert low <= report[key] <= high, key
        assert low < high, key
    assert intervals == bootstrap_intervals(y_true, y_pred, samples=200, seed=1)


def test_bootstrap_has_no_severe_interval_without_explicit_items():
    from rating_models.metrics import bootstrap_intervals

    intervals = bootstrap_intervals([0, 1, 2, 0], [0, 0, 2, 1], samples=50)
    assert intervals["severe_dcm_rate"] is None
    assert intervals["dcm_rate"] is not None


def test_bootstrap_macro_f1_interval_is_sklearns_over_the_same_resamples():
    from rating_models.metrics import bootstrap_intervals

    rng = np.random.default_rng(5)
    y_true = rng.choice(5, size=301, p=[0.7, 0.15, 0.1, 0.03, 0.02])  # rare classes go missing
    y_pred = np.where(rng.random(301) < 0.6, y_true, rng.integers(0, 5, size=301))
    draws = np.random.default_rng(3)
    resamples = [draws.integers(0, 301, size=301) for _ in range(80)]
    f1s = [
        f1_score(y_true[r], y_pred[r], labels=range(5), average="macro", zero_division=0)
        for r in resamples
    ]
    expected = [float(v) for v in np.percentile(f1s, [2.5, 97.5])]
    assert bootstrap_intervals(y_true, y_pred, samples=80, seed=3)["macro_f1"] == expected
