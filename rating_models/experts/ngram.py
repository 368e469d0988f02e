"""The n-gram expert: TF-IDF over word and character n-grams with a linear model.

Cheap, strong on small data and hard to beat on prompts: word 1-2-grams catch phrases
("see through"), character 2-5-grams inside word boundaries catch spellings that a word
vocabulary never saw (`nsfw_`, `n*de`, `topless,`). It reads the cleaned prompt and, when the
item has been through a tagger, its tags; it never reads the negative prompt, so that segment
cannot raise its rating. Its pre-logit features are the linear model's five decision scores.

The same model is `rating-models baseline`: every report compares against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union

from rating_models.examples import Example, rated
from rating_models.experts.base import Expert, ExpertError, ExpertOutput
from rating_models.ratings import NUM_CLASSES
from rating_models.text import prompt_segment

MODEL_FILE = "ngram.joblib"


@dataclass
class NgramConfig:
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 2
    # Read the tagger's tags after the prompt when the item has them (prompt alone otherwise).
    with_tags: bool = True
    min_tag_confidence: float = 0.35
    # Inverse regularisation strength of the logistic regression.
    C: float = 10.0
    class_weighting: str = "balanced"  # "balanced" or "none"
    max_iter: int = 5000
    seed: int = 1234

    def __post_init__(self) -> None:
        self.word_ngrams = _span(self.word_ngrams, "word_ngrams")
        self.char_ngrams = _span(self.char_ngrams, "char_ngrams")
        if self.C <= 0:
            raise ExpertError(f"C must be positive, got {self.C}")
        if self.class_weighting not in {"balanced", "none"}:
            raise ExpertError(f"class_weighting {self.class_weighting!r}: balanced or none")


def _span(value: Sequence[int], name: str) -> tuple[int, int]:
    low, high = (int(v) for v in value)
    if not 1 <= low <= high:
        raise ExpertError(f"{name}: expected [low, high] with 1 <= low <= high, got {value}")
    return low, high


def ngram_pipeline(config: NgramConfig) -> Pipeline:
    """The unfitted model: word and character TF-IDF side by side, then the linear model."""
    return make_pipeline(
        make_union(
            TfidfVectorizer(
                ngram_range=config.word_ngrams, min_df=config.min_df, sublinear_tf=True
            ),
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=config.char_ngrams,
                min_df=config.min_df,
                sublinear_tf=True,
            ),
        ),
        LogisticRegression(
            C=config.C,
            class_weight="balanced" if config.class_weighting == "balanced" else None,
            max_iter=config.max_iter,
            random_state=config.seed,
        ),
    )


class NgramExpert(Expert):
    kind = "ngram"
    modality = "prompt"
    Config = NgramConfig

    def __init__(self, name: str, config: NgramConfig | None = None) -> None:
        super().__init__(name, config)
        self.model: Pipeline | None = None

    @property
    def feature_size(self) -> int:
        return NUM_CLASSES

    def text(self, example: Example) -> str:
        with_tags = self.config.with_tags and example.tags is not None
        return prompt_segment(
            example, with_tags=with_tags, min_confidence=self.config.min_tag_confidence
        )

    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        """Fit on `train`; `val` is only scored (a linear model needs no early stopping)."""
        train, val = rated(train), rated(val)
        if not train:
            raise ExpertError(f"expert {self.name!r}: no rated examples to train on")
        labels = np.array([e.rating.index for e in train])
        if len(np.unique(labels)) < 2:
            raise ExpertError(f"expert {self.name!r}: needs at least two ratings to learn from")
        model = ngram_pipeline(self.config)
        model.fit([self.text(e) for e in train], labels)
        self.model = model
        report: dict[str, Any] = {"n_train": len(train), "vocabulary_size": self.vocabulary_size}
        if val:
            predicted = self._predict(val).ratings
            truth = np.array([e.rating.index for e in val])
            report["val_accuracy"] = round(float((predicted == truth).mean()), 4)
        return report

    @property
    def vocabulary_size(self) -> int:
        if self.model is None:
            return 0
        union = self.model.steps[0][1]
        return sum(len(v.vocabulary_) for _, v in union.transformer_list)

    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        if self.model is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        output = ExpertOutput.empty(len(examples), self.feature_size)
        if not examples:
            return output
        texts = [self.text(e) for e in examples]
        scores = self.model.decision_function(texts)  # (N, classes seen in training)
        if scores.ndim == 1:  # two classes: one score, for the second
            scores = np.stack([-scores, scores], axis=1)
        probs = self.model.predict_proba(texts)
        # A class absent from the training data gets no column: it scores far below the rest.
        columns = self.model.classes_
        output.features[:] = scores.min(axis=1, keepdims=True) - 1.0
        output.features[:, columns] = scores
        output.probs[:, columns] = probs
        output.abstain[:] = False
        return output

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "vocabulary_size": self.vocabulary_size}

    def _save_state(self, directory: Path) -> None:
        if self.model is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        joblib.dump(self.model, directory / MODEL_FILE, compress=3)

    def _load_state(self, directory: Path) -> None:
        # The bundle verified this file's checksum against its manifest before loading.
        self.model = joblib.load(directory / MODEL_FILE)
