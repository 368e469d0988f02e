"""The strong simple baseline every report compares against: the n-gram expert alone.

TF-IDF over word 1-2-grams and character 2-5-grams of the prompt and tags, logistic
regression with balanced class weights: the bar a data scientist sets first, and the model the
experts, the voter and the MLP must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rating_models.examples import Example, rated
from rating_models.experts.ngram import NgramConfig, NgramExpert
from rating_models.metrics import model_report

NAME = "tfidf_word_char_logreg"


def ngram_baseline(
    train: Sequence[Example], test: Sequence[Example], *, config: NgramConfig | None = None
) -> np.ndarray:
    """Fit the n-gram model on `train`'s rated items, predict `test`'s classes."""
    expert = NgramExpert("baseline", config or NgramConfig())
    expert.fit(rated(train), [])
    return expert.predict(list(test)).ratings


def baseline_report(
    train: Sequence[Example], test: Sequence[Example], *, by: str | None = None, bootstrap: int = 0
) -> dict[str, Any]:
    """Metrics of the baseline on `test`, with the same fields as a bundle's models."""
    test = rated(test)
    y_true = np.array([e.rating.index for e in test], dtype=np.int64)
    y_pred = ngram_baseline(train, test)
    report = {"n": len(test), "models": {NAME: model_report(y_true, y_pred, bootstrap)}}
    if by is not None:
        report[f"by_{by}"] = {}
        for value in sorted({str(getattr(e, by)) for e in test}):
            rows = [i for i, e in enumerate(test) if str(getattr(e, by)) == value]
            report[f"by_{by}"][value] = {
                "n": len(rows),
                "models": {NAME: model_report(y_true[rows], y_pred[rows], bootstrap)},
            }
    return report
