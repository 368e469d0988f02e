"""The n-gram expert: TF-IDF over word and character n-grams with a linear model.

Cheap, strong on small data and hard to beat on prompts: word 1-2-grams catch phrases
("see through"), character 2-5-grams inside word boundaries catch spellings that a word
vocabulary never saw (`nsfw_`, `n*de`, `topless,`). It reads the cleaned prompt and, when the
item has been through a tagger, its tags; it never reads the negative prompt, so that segment
cannot raise its rating. Its pre-logit features are the linear model's five decision scores.

The same model is `rating-models baseline`: every report compares against it.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterator, Sequence
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
from rating_models.text import Unit, prompt_segment, segment_units

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
        return prompt_segment(
            example,
            with_tags=self._reads_tags(example),
            min_confidence=self.config.min_tag_confidence,
        )

    def _reads_tags(self, example: Example) -> bool:
        return self.config.with_tags and example.tags is not None

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

    # -- explanation -----------------------------------------------------------------------

    def attributions(
        self, examples: Sequence[Example], ratings: Sequence[int]
    ) -> list[dict[Unit, float]]:
        """Per example, each word's and tag's weight toward its rating (a class index).

        The linear model's score of a rating minus the mean of the others' is a sum over
        n-grams of tf-idf x (that rating's coefficient - the others' mean): exact, no sampling.
        Each n-gram's term is shared equally among its occurrences in the text, and each
        occurrence's among the words or tags it overlaps (a bigram, a character n-gram that
        spans a hyphen), so the weights of an item add up to its score less the intercepts and
        the few n-grams that touch no word ("| tags:").
        """
        if self.model is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        union, linear = self.model.steps[0][1], self.model.steps[-1][1]
        segments = [
            segment_units(
                e, with_tags=self._reads_tags(e), min_confidence=self.config.min_tag_confidence
            )
            for e in examples
        ]
        tfidf = union.transform([text for text, _ in segments]).tocsr()  # (N, F) sparse
        classes = list(linear.classes_)
        directions = {r: _direction(linear.coef_, classes, r) for r in set(ratings)}  # (F,) each
        found = []
        for row, ((text, spans), rating) in enumerate(zip(segments, ratings, strict=True)):
            values = dict(zip(tfidf[row].indices, tfidf[row].data, strict=True))
            direction = directions[rating]
            ends = [end for _, _, end in spans]  # ascending: the spans never overlap
            by_span: Counter[tuple[int, int]] = Counter()
            offset = 0
            for _, vectorizer in union.transformer_list:
                occurrences = list(_occurrences(vectorizer, text))
                counts = Counter(gram for gram, _, _ in occurrences)
                terms = {}  # each n-gram's share of the score, per occurrence
                for gram, count in counts.items():
                    column = vectorizer.vocabulary_.get(gram)
                    if column is not None and offset + column in values:
                        column += offset
                        terms[gram] = values[column] * direction[column] / count
                for gram, start, end in occurrences:
                    if gram in terms:
                        by_span[start, end] += terms[gram]
                offset += len(vectorizer.vocabulary_)
            weights: Counter[Unit] = Counter()
            for (start, end), term in by_span.items():
                units = _overlapping(spans, ends, start, end)
                for unit in units:
                    weights[unit] += float(term) / len(units)
            found.append(dict(weights))
        return found

    def _save_state(self, directory: Path) -> None:
        if self.model is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        joblib.dump(self.model, directory / MODEL_FILE, compress=3)

    def _load_state(self, directory: Path) -> None:
        # The bundle verified this file's checksum against its manifest before loading.
        self.model = joblib.load(directory / MODEL_FILE)


def _direction(coef: np.ndarray, classes: list[int], rating: int) -> np.ndarray:
    """Coefficients toward `rating`: its row minus the mean of the other classes' rows. A
    two-class model keeps one row, for its second class; the first's is its negation."""
    if coef.shape[0] == 1:
        return coef[0] if classes.index(rating) == 1 else -coef[0]
    own = classes.index(rating)
    others = np.delete(coef, own, axis=0)
    return coef[own] - others.mean(axis=0)


def _overlapping(
    spans: list[tuple[Unit, int, int]], ends: list[int], start: int, end: int
) -> list[Unit]:
    """The units whose spans overlap [start, end); `spans` are in order and never overlap,
    `ends` their ends, so a bisection finds the first."""
    units = []
    i = bisect.bisect_right(ends, start)
    while i < len(spans) and spans[i][1] < end:
        units.append(spans[i][0])
        i += 1
    return units


def _occurrences(vectorizer: TfidfVectorizer, text: str) -> Iterator[tuple[str, int, int]]:
    """Each n-gram the vectorizer counts in `text`, with the characters it covers.

    Word n-grams are runs of its tokens, found with its own token pattern. Character n-grams
    inside word boundaries ("char_wb") never cross whitespace: the vectorizer's own analyzer,
    run on each whitespace-separated piece, gives that piece's n-grams, all placed on the piece.
    """
    lowered = vectorizer.build_preprocessor()(text)
    if vectorizer.analyzer == "char_wb":
        analyse = vectorizer.build_analyzer()
        for piece in re.finditer(r"\S+", lowered):
            for gram in analyse(piece.group()):
                yield gram, piece.start(), piece.end()
        return
    tokens = list(re.finditer(vectorizer.token_pattern, lowered))
    low, high = vectorizer.ngram_range
    for n in range(low, high + 1):
        for i in range(len(tokens) - n + 1):
            gram = " ".join(t.group() for t in tokens[i : i + n])
            yield gram, tokens[i].start(), tokens[i + n - 1].end()
