"""The bar a data scientist would set first: TF-IDF words and bigrams + logistic regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from rating_models.examples import Example, rated
from rating_models.metrics import model_report
from rating_models.text import clean_prompt


def tfidf_logistic_regression(
    train: Sequence[Example], test: Sequence[Example], *, seed: int = 1234
) -> np.ndarray:
    """Fit on `train`'s cleaned prompts (balanced class weights), predict `test`'s classes."""
    train = rated(train)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=5000, C=4.0, random_state=seed),
    )
    model.fit([clean_prompt(e.prompt) for e in train], [e.rating.index for e in train])
    return model.predict([clean_prompt(e.prompt) for e in test])


def baseline_report(
    train: Sequence[Example], test: Sequence[Example], *, by: str | None = None, bootstrap: int = 0
) -> dict[str, Any]:
    """Metrics of the TF-IDF baseline on `test`, with the same fields as a bundle's models."""
    test = rated(test)
    y_true = np.array([e.rating.index for e in test], dtype=np.int64)
    y_pred = tfidf_logistic_regression(train, test)
    report = {"n": len(test), "models": {"tfidf_logreg": model_report(y_true, y_pred, bootstrap)}}
    if by is not None:
        report[f"by_{by}"] = {}
        for value in sorted({str(getattr(e, by)) for e in test}):
            rows = [i for i, e in enumerate(test) if str(getattr(e, by)) == value]
            report[f"by_{by}"][value] = {
                "n": len(rows),
                "models": {"tfidf_logreg": model_report(y_true[rows], y_pred[rows], bootstrap)},
            }
    return report
