"""Out-of-fold expert outputs: what each expert says about items it was not trained on.

The MLP learns how far to trust each expert. Shown an expert's outputs on the very items that
expert was trained on, it learns to trust an over-confident expert; so every expert is trained
k times, each time without one fold of the training items, and the MLP learns from the outputs
on the left-out folds. The experts of the bundle are then fitted once more on all training
items. A frozen encoder's embeddings are computed once and shared by all k + 1 fits.

The bundle keeps these outputs for its training items (`OUT_OF_FOLD_FILE`), so that a later
retrain of the MLP alone reads them instead of the experts' in-sample outputs.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from rating_models.examples import Example
from rating_models.experts import Expert, ExpertOutput

log = logging.getLogger(__name__)

OUT_OF_FOLD_FILE = "stacking/out_of_fold.npz"
EARLY_STOPPING_SHARE = 0.1  # of a fold's training items, when no validation set is given


@dataclass
class OutOfFold:
    """Every expert's out-of-fold output on a set of items, by item id."""

    ids: list[str]
    outputs: dict[str, ExpertOutput]

    def rows(self, ids: Sequence[str]) -> dict[str, ExpertOutput]:
        """The outputs for `ids`, in their order; every id must be present."""
        position = {item: row for row, item in enumerate(self.ids)}
        missing = [i for i in ids if i not in position]
        if missing:
            raise KeyError(f"{len(missing)} items have no out-of-fold output (first {missing[0]})")
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        return {name: out.take(rows) for name, out in self.outputs.items()}

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"ids": np.array(self.ids, dtype=str)}
        for name, out in self.outputs.items():
            arrays[f"{name}/probs"] = out.probs.astype(np.float16)
            arrays[f"{name}/features"] = out.features.astype(np.float16)
            arrays[f"{name}/abstain"] = out.abstain
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        path.write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(i) for i in data["ids"]]
            names = sorted({key.split("/")[0] for key in data.files if "/" in key})
            outputs = {
                name: ExpertOutput(
                    data[f"{name}/probs"].astype(np.float32),
                    data[f"{name}/features"].astype(np.float32),
                    data[f"{name}/abstain"].astype(bool),
                )
                for name in names
            }
        return cls(ids, outputs)


def read_out_of_fold(bundle_dir: str | Path) -> OutOfFold | None:
    """The out-of-fold outputs a bundle keeps for its training items; None if it has none."""
    path = Path(bundle_dir) / OUT_OF_FOLD_FILE
    return OutOfFold.load(path) if path.is_file() else None


def assign_folds(examples: Sequence[Example], k: int, *, seed: int) -> np.ndarray:
    """(N,) fold number per example, stratified by rating so each fold sees the rare ones.

    A rating with fewer than k items is spread over as many folds as it has items."""
    return label_folds(np.array([e.rating.index for e in examples]), k, seed=seed)


def label_folds(labels: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """(N,) fold number per class index, stratified as `assign_folds`."""
    if k < 2:
        raise ValueError(f"out-of-fold stacking needs at least 2 folds, got {k}")
    folds = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    # Classes smaller than k only warn; the split is still a partition.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            folds[rows] = fold
    return folds


def early_stopping_split(
    examples: Sequence[Example], *, seed: int
) -> tuple[list[Example], list[Example]]:
    """A stratified share of `examples` held out for early stopping, and the rest."""
    rng = np.random.default_rng(seed)
    labels = np.array([e.rating.index for e in examples])
    held = np.zeros(len(examples), dtype=bool)
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        take = round(EARLY_STOPPING_SHARE * len(rows))
        if len(rows) >= 2 and take == 0:
            take = 1
        held[rng.choice(rows, size=min(take, len(rows) - 1), replace=False)] = True
    return [e for e, h in zip(examples, held, strict=True) if not h], [
        e for e, h in zip(examples, held, strict=True) if h
    ]


def out_of_fold(
    prototype: Expert,
    examples: Sequence[Example],
    folds: np.ndarray,
    *,
    early_stopping: Sequence[Example] | None = None,
    progress: bool = False,
    seed: int = 0,
) -> ExpertOutput:
    """The expert's output on each example from a copy trained without its fold.

    `early_stopping`: the validation items each copy stops on; None holds out a share of each
    fold's training items instead. An expert that does not learn from these labels (rules,
    thresholds) is simply asked: its outputs are out of sample already.
    """
    if not prototype.learns_from(examples):
        return prototype.fresh().predict(examples)
    output = ExpertOutput.empty(len(examples), prototype.feature_size)
    k = int(folds.max()) + 1 if len(folds) else 0
    bar = tqdm(range(k), desc=f"{prototype.name}: folds", unit="fold", disable=not progress)
    for fold in bar:
        inside = np.flatnonzero(folds != fold)
        outside = np.flatnonzero(folds == fold)
        fitted = [examples[i] for i in inside]
        stop = early_stopping
        if stop is None:
            fitted, stop = early_stopping_split(fitted, seed=seed + fold)
        copy = prototype.fresh()
        copy.fit(fitted, stop)
        said = copy.predict([examples[i] for i in outside])
        output.probs[outside] = said.probs
        output.features[outside] = said.features
        output.abstain[outside] = said.abstain
        output.flagged[outside] = said.flagged
    bar.close()
    return output
