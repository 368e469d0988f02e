"""Class imbalance options shared by the experts: loss weights and majority downsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rating_models.baselines import NAME, baseline_report, ngram_baseline
from rating_models.training import class_weights, downsample, pick_device
from tests.rating_models.bundles import toy_examples

# 60 PG, 20 PG13, 10 R, 4 X, no XXX
LABELS = np.array([0] * 60 + [1] * 20 + [2] * 10 + [3] * 4)


def test_balanced_weights_make_every_present_class_count_alike():
    weights = class_weights(LABELS, "balanced").numpy()
    counts = np.bincount(LABELS, minlength=5)
    # weight x count is the same for every class present: n / K
    assert np.allclose((weights * counts)[:4], len(LABELS) / 4)
    assert weights[4] == pytest.approx(weights[3])  # absent: the largest weight, not infinity


def test_sqrt_weights_are_gentler_and_none_is_uniform():
    balanced = class_weights(LABELS, "balanced").numpy()
    assert np.allclose(class_weights(LABELS, "sqrt").numpy(), np.sqrt(balanced))
    assert class_weights(LABELS, "none").tolist() == [1.0] * 5


def test_an_unknown_weighting_is_a_clear_error():
    with pytest.raises(ValueError, match="expected balanced, sqrt or none"):
        class_weights(LABELS, "inverse")


def test_downsampling_caps_the_majority_and_keeps_every_rare_item():
    keep = downsample(LABELS, ratio=1.5, seed=0)
    kept = np.bincount(LABELS[keep], minlength=5)
    assert kept.tolist() == [30, 20, 10, 4, 0]  # PG capped at 1.5 x the 20 PG13
    assert np.array_equal(keep, np.sort(keep)) and len(set(keep)) == len(keep)
    assert np.array_equal(keep, downsample(LABELS, ratio=1.5, seed=0))  # seeded


def test_the_cpu_is_chosen_when_asked_and_auto_picks_cuda_only_when_present():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_ngram_baseline_scores_like_a_bundles_models():
    train, test = toy_examples(6), toy_examples(1, "t")
    predicted = ngram_baseline(train, test)
    assert predicted.shape == (len(test),) and set(predicted) <= set(range(5))
    report = baseline_report(train, test, by="source")
    assert set(report["models"]) == {NAME} == {"tfidf_word_char_logreg"}
    figures = report["models"][NAME]
    assert report["n"] == len(test)
    assert {"accuracy", "macro_f1", "dcm_rate", "severe_dcm_count", "confusion"} <= set(figures)
    assert sum(map(sum, figures["confusion"])) == len(test)
    assert set(report["by_source"]) == {str(e.source) for e in test}
