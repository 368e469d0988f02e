"""The one interface every expert has: fit, predict a batch, save, load.

An expert reads one modality (the prompt, the tags, or the image) and, for a batch of
examples, returns class probabilities (N x 5), pre-logit features (N x D) and an abstain mask
for the examples whose modality is missing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from rating_models.examples import Example
from rating_models.ratings import NUM_CLASSES

EXPERT_FILE = "expert.json"


class ExpertError(RuntimeError):
    """An expert that cannot be built, trained or loaded."""


@dataclass
class ExpertOutput:
    """What an expert says about a batch. Rows of abstained examples are zeros."""

    probs: np.ndarray  # (N, 5) float32
    features: np.ndarray  # (N, D) float32
    abstain: np.ndarray  # (N,) bool
    # Items a moderator must see whatever the rating (a Blocked-level tag, say).
    flagged: np.ndarray | None = None  # (N,) bool

    def __post_init__(self) -> None:
        if self.flagged is None:
            self.flagged = np.zeros(len(self.abstain), dtype=bool)

    @property
    def ratings(self) -> np.ndarray:
        """Class index per example, -1 where the expert abstained."""
        ratings = self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, dtype=np.int64)
        return np.where(self.abstain, -1, ratings)

    @classmethod
    def empty(cls, n: int, feature_size: int) -> ExpertOutput:
        return cls(
            probs=np.zeros((n, NUM_CLASSES), dtype=np.float32),
            features=np.zeros((n, feature_size), dtype=np.float32),
            abstain=np.ones(n, dtype=bool),
        )

    def take(self, rows: Sequence[int] | np.ndarray) -> ExpertOutput:
        rows = np.asarray(rows, dtype=np.int64)
        return ExpertOutput(
            self.probs[rows], self.features[rows], self.abstain[rows], self.flagged[rows]
        )


class Expert(ABC):
    """A single-modality classifier.

    Subclasses set `kind` (the name in bundle manifests), `modality` (what it needs:
    "prompt", "tags" or "image"), a `Config` dataclass, and implement `_predict`, `fit`,
    `_save_state` and `_load_state`.
    """

    kind: ClassVar[str]
    modality: ClassVar[str]
    Config: ClassVar[type]
    # Text experts read the negative prompt as a segment of its own; the guard in `predict`
    # makes sure that segment can lower their rating but never raise it.
    reads_negative_prompt: ClassVar[bool] = False

    def __init__(self, name: str, config: Any | None = None) -> None:
        self.name = name
        self.config = config if config is not None else self.Config()

    # -- what every expert implements ------------------------------------------------------

    @property
    @abstractmethod
    def feature_size(self) -> int: ...

    @abstractmethod
    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        """Train on rated examples with `val` for early stopping; returns a short report."""

    @abstractmethod
    def _predict(self, examples: Sequence[Example]) -> ExpertOutput: ...

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What the bundle manifest records about this expert."""
        return {
            "name": self.name,
            "kind": self.kind,
            "modality": self.modality,
            "feature_size": self.feature_size,
        }

    def learns_from(self, train: Sequence[Example]) -> bool:
        """Whether fitting on `train` changes what the expert says (rules do not learn)."""
        return True

    def fresh(self) -> Self:
        """An untrained copy with the same settings, for out-of-fold fits. Experts with a
        costly frozen part (an encoder and its cached embeddings) share it with the copy."""
        return type(self)(self.name, copy.deepcopy(self.config))

    def prepare(self, examples: Sequence[Example], *, progress: bool = False) -> None:  # noqa: B027
        """Precompute what every fit on these examples shares (a frozen encoder's embeddings);
        a no-op for experts that have nothing to share."""

    # -- shared behaviour ------------------------------------------------------------------

    def predict(self, examples: Sequence[Example]) -> ExpertOutput:
        """Rate a batch: probabilities (N x 5), features (N x D) and the abstain mask."""
        return self.predict_guarded(examples)[0]

    def predict_guarded(
        self, examples: Sequence[Example]
    ) -> tuple[ExpertOutput, ExpertOutput | None, np.ndarray]:
        """Predict, and for items with a negative prompt also without it.

        Returns (guarded output, output without negative prompts for the rows listed, rows).
        Where the negative prompt would raise the rating, the guarded output is the one
        without it: `nsfw, nude` written as unwanted must never make an item more explicit.
        """
        output = self._predict(examples)
        rows = np.zeros(0, dtype=np.int64)
        if not self.reads_negative_prompt:
            return output, None, rows
        rows = np.array(
            [i for i, e in enumerate(examples) if e.negative_prompt.strip()], dtype=np.int64
        )
        if len(rows) == 0:
            return output, None, rows
        stripped = self._predict(
            [dataclasses.replace(examples[i], negative_prompt="") for i in rows]
        )
        raised = (output.ratings[rows] > stripped.ratings) & ~output.abstain[rows]
        output.probs[rows[raised]] = stripped.probs[raised]
        output.features[rows[raised]] = stripped.features[raised]
        return output, stripped, rows

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = {
            "name": self.name,
            "kind": self.kind,
            "config": dataclasses.asdict(self.config),
        }
        (directory / EXPERT_FILE).write_text(json.dumps(record, indent=2))
        self._save_state(directory)

    @classmethod
    def restore(cls, name: str, config: dict[str, Any], directory: Path) -> Self:
        """Rebuild a saved expert: its configuration, then its state from `directory`."""
        expert = cls.from_config(name, config)
        expert._load_state(directory)
        return expert

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any] | None = None) -> Self:
        known = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = set(config or {}) - known
        if unknown:
            raise ExpertError(
                f"expert {name!r} ({cls.kind}): unknown setting(s) {sorted(unknown)}; "
                f"known: {sorted(known)}"
            )
        return cls(name, cls.Config(**(config or {})))
