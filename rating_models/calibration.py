"""The calibration items of the bounded-DCM suggestion: MLP probabilities the MLP did not
learn from, with their true ratings and the voter's.

Training items: the MLP is fitted k more times on the experts' out-of-fold outputs, each time
without one fold, and rates the fold it left out (the experts' folds: no expert and no MLP saw
the item). Validation items: the experts fitted on all training items and the bundle's MLP,
which used them only to stop early. The bundle keeps this set (`CALIBRATION_FILE`), so that a
new α is a recalibration, with no model trained again.

Whether the voter's rating is a floor under the rule is chosen by cross-validation over the
set: the rule is calibrated on k - 1 folds and scored on the last, with and without the floor;
the one with the fewer severe DCM held out wins, then the one that over-rates fewer items.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.risk import BoundedRule, calibrate, rates

CALIBRATION_FILE = "stacking/calibration.npz"


@dataclass
class CalibrationSet:
    ids: list[str]
    probs: np.ndarray  # (N, 5) MLP probabilities out of sample
    labels: np.ndarray  # (N,) class indices
    votes: np.ndarray  # (N,) the voter's class index, -1 where it abstained
    # (N,) bool: some expert rated the item X or XXX (the publishing guard); None: not kept
    alarms: np.ndarray | None = None

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
            **({} if self.alarms is None else {"alarms": self.alarms.astype(bool)}),
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
                data["alarms"].astype(bool) if "alarms" in data.files else None,
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


def items_needed(alpha: float, folds: int) -> int:
    """The fewest calibration items that can choose the rule at `alpha` by `folds`-fold
    cross-validation: each fit of the rule (on k - 1 folds) must be able to bound α."""
    fewest = math.ceil(1 / alpha - 1e-9) - 1  # n with α (n + 1) >= 1
    return math.ceil(fewest * folds / (folds - 1))


def items_check(n: int, *, alpha: float, folds: int) -> None:
    """ValueError, saying what to change, when `n` items cannot choose the rule at `alpha`."""
    if n < (needed := items_needed(alpha, folds)):
        raise ValueError(
            f"the bounded suggestion at α = {alpha:.1%} needs at least {needed} rated items "
            f"(training and validation), {n} given: raise alpha or set suggested to 'max'"
        )


def held_out_cost(figures: dict[str, Any]) -> tuple[float, float]:
    """What choosing between rules at the same α weighs, in order: the severe DCM rate held
    out (the error that matters most, which α does not bound), then the over-rating rate."""
    return figures["severe_dcm_rate"] or 0.0, figures["over_rating_rate"]


def rule_choose(
    calibration: CalibrationSet,
    *,
    alpha: float,
    severe_alpha: float | None,
    folds: int = 5,
    seed: int = 1234,
) -> tuple[BoundedRule, dict[str, Any]]:
    """The rule for `alpha`, its voter floor chosen by cross-validation; and the figures that
    chose it (held-out DCM, severe DCM and over-rating rates, with and without the floor).
    ValueError when there are fewer than `items_needed` calibration items."""
    labels = calibration.labels
    items_check(len(labels), alpha=alpha, folds=folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    report: dict[str, Any] = {}
    for floor in (False, True):
        pooled = np.zeros(len(labels), dtype=np.int64)  # each item rated by the rule it left out
        for fit, held in splitter.split(np.zeros(len(labels)), labels):
            votes = calibration.votes[fit] if floor else None
            rule = calibrate(
                calibration.probs[fit],
                labels[fit],
                alpha=alpha,
                votes=votes,
                severe_alpha=severe_alpha,
                alarms=None if calibration.alarms is None else calibration.alarms[fit],
            )
            pooled[held] = rule.levels(calibration.probs[held], calibration.votes[held])
        report["voter_floor" if floor else "no_floor"] = {
            name: None if value is None else round(value, 4)
            for name, value in rates(pooled, labels).items()
        }
    floor = held_out_cost(report["voter_floor"]) < held_out_cost(report["no_floor"])
    rule = calibrate(
        calibration.probs,
        labels,
        alpha=alpha,
        votes=calibration.votes if floor else None,
        severe_alpha=severe_alpha,
        alarms=calibration.alarms,
    )
    return rule, {"cross_validation": report, "folds": folds, "chosen": rule.to_manifest()}


TRADEOFF_ALPHAS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def read_calibration(bundle_dir: str | Path) -> CalibrationSet | None:
    """The calibration items a bounded bundle keeps; None if it has none."""
    path = Path(bundle_dir) / CALIBRATION_FILE
    return CalibrationSet.load(path) if path.is_file() else None


def tradeoff_rows(
    calibration: CalibrationSet,
    rule: BoundedRule,
    probs: np.ndarray,
    votes: np.ndarray,
    labels: np.ndarray,
    alphas: Sequence[float] = TRADEOFF_ALPHAS,
    flagged: np.ndarray | None = None,
    alarms: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """What each α would cost on these (test) items: the rule recalibrated at α on the
    bundle's calibration items (its floor and severe bound as the bundle's), then its DCM,
    severe DCM and over-rating rates, and the share it would publish unreviewed; `chosen`
    marks the bundle's own α. An α the calibration items cannot bound is left out. `flagged`:
    items a moderator must see, never published; `alarms`: the test items some expert rates
    explicit (the publishing guard)."""
    reviewed = np.zeros(len(labels), dtype=bool) if flagged is None else np.asarray(flagged)
    floor = calibration.votes if rule.voter_floor else None
    rows = []
    for alpha in sorted({*alphas, rule.alpha}):
        try:
            candidate = calibrate(
                calibration.probs,
                calibration.labels,
                alpha=alpha,
                votes=floor,
                severe_alpha=rule.severe_alpha,
                alarms=calibration.alarms,
            )
        except ValueError:
            continue
        levels = candidate.levels(probs, votes)
        published = candidate.publishable(probs, levels, alarms) & ~reviewed
        rows.append(
            {
                "alpha": alpha,
                **rates(levels, labels),
                "automation_share": float(published.mean()),
                "threshold": candidate.effective_threshold,
                "chosen": alpha == rule.alpha,
            }
        )
    return rows


def recalibrated(
    bundle: Any,
    calibration: CalibrationSet,
    *,
    alpha: float,
    severe_alpha: float | None = None,
    seed: int = 1234,
) -> Any:
    """The bundle with its rule calibrated again at `alpha` on its calibration items (the voter
    floor chosen again by cross-validation): the same experts and MLP, a new manifest without
    a version (saving gives it one) or test figures. ValueError when the items cannot bound
    `alpha`."""
    from rating_models.bundle import Bundle

    folds = int(bundle.manifest.get("config", {}).get("folds") or 5)
    rule, report = rule_choose(
        calibration, alpha=alpha, severe_alpha=severe_alpha, folds=folds, seed=seed
    )
    manifest = {k: v for k, v in bundle.manifest.items() if k != "version"}
    manifest["calibration"] = report
    manifest["recalibrated_from"] = bundle.version
    manifest["test_metrics"] = None  # the old rule's figures: `evaluate` scores the new one
    config = manifest.get("config", {})
    manifest["config"] = {**config, "alpha": alpha, "severe_alpha": severe_alpha}
    again = Bundle(bundle.experts, bundle.voter, bundle.mlp, "bounded", manifest, rule=rule)
    again.calibration = calibration
    return again


def recalibrate(
    directory: str | Path,
    *,
    alpha: float,
    severe_alpha: float | None = None,
    out: str | Path,
    seed: int = 1234,
) -> Any:
    """`recalibrated` for the bundle at `directory`, saved to `out` under a new version, with
    its out-of-fold outputs and calibration items. No expert and no MLP is trained."""
    from rating_models.bundle import Bundle, BundleError
    from rating_models.stacking import read_out_of_fold

    bundle = Bundle.load(directory)
    calibration = read_calibration(directory)
    if calibration is None:
        raise BundleError(
            f"bundle {directory} keeps no calibration items: train it with suggested = "
            "'bounded' (rating-models train) to recalibrate it"
        )
    try:
        again = recalibrated(bundle, calibration, alpha=alpha, severe_alpha=severe_alpha, seed=seed)
    except ValueError as error:
        raise BundleError(str(error)) from None
    again.out_of_fold = read_out_of_fold(directory)
    again.save(out)
    return again
