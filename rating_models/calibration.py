"""The calibration items of the bounded-DCM suggestion: MLP probabilities the MLP did not
learn from, with their true ratings and the voter's.

Training items: the MLP is fitted k more times on the experts' out-of-fold outputs, each time
without one fold, and rates the fold it left out (the experts' folds: no expert and no MLP saw
the item). Validation items: the experts fitted on all training items and the bundle's MLP,
which used them only to stop early. The bundle keeps this set (`CALIBRATION_FILE`), so that a
new α is a recalibration, with no model trained again.

Whether the voter's rating is a floor under the rule is chosen by cross-validation over the
set: the rule is calibrated on k - 1 folds and scored on the last, with and without the floor,
and the one that over-rates fewer items wins.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.risk import BoundedRule, calibrate

CALIBRATION_FILE = "stacking/calibration.npz"


@dataclass
class CalibrationSet:
    ids: list[str]
    probs: np.ndarray  # (N, 5) MLP probabilities out of sample
    labels: np.ndarray  # (N,) class indices
    votes: np.ndarray  # (N,) the voter's class index, -1 where it abstained

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            ids=np.array(self.ids, dtype=str),
            probs=self.probs.astype(np.float32),
            labels=self.labels.astype(np.int8),
            votes=self.votes.astype(np.int8),
        )
        path.write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> CalibrationSet:
        with np.load(path) as data:
            return cls(
                [str(i) for i in data["ids"]],
                data["probs"].astype(np.float64),
                data["labels"].astype(np.int64),
                data["votes"].astype(np.int64),
            )


def mlp_out_of_fold(
    slots: Sequence[ExpertSlot],
    config: dict[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    folds: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> np.ndarray:
    """(N, 5): each training row rated by an MLP fitted without its fold."""
    probs = np.zeros((len(x_train), 5), dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        mlp = MultimodalMLP(list(slots), MLPConfig(**config))
        mlp.fit(x_train[~held], y_train[~held], x_val, y_val)
        probs[held] = mlp.predict_proba(x_train[held])
    return probs


def rule_choose(
    calibration: CalibrationSet,
    *,
    alpha: float,
    severe_alpha: float | None,
    folds: int = 5,
    seed: int = 1234,
) -> tuple[BoundedRule, dict[str, Any]]:
    """The rule for `alpha`, its voter floor chosen by cross-validation; and the figures that
    chose it (held-out DCM and over-rating rates, with and without the floor)."""
    labels = calibration.labels
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    report: dict[str, Any] = {}
    for floor in (False, True):
        dcm, over = [], []
        for fit, held in splitter.split(np.zeros(len(labels)), labels):
            votes = calibration.votes[fit] if floor else None
            rule = calibrate(
                calibration.probs[fit], labels[fit], alpha=alpha, votes=votes,
                severe_alpha=severe_alpha,
            )  # fmt: skip
            predicted = rule.levels(calibration.probs[held], calibration.votes[held])
            dcm.append(float(np.mean(predicted < labels[held])))
            over.append(float(np.mean(predicted > labels[held])))
        report["voter_floor" if floor else "no_floor"] = {
            "dcm_rate": round(float(np.mean(dcm)), 4),
            "over_rating_rate": round(float(np.mean(over)), 4),
        }
    floor = report["voter_floor"]["over_rating_rate"] < report["no_floor"]["over_rating_rate"]
    rule = calibrate(
        calibration.probs,
        labels,
        alpha=alpha,
        votes=calibration.votes if floor else None,
        severe_alpha=severe_alpha,
    )
    return rule, {"cross_validation": report, "folds": folds, "chosen": rule.to_manifest()}
