"""An MLP retrain of a champion whose suggestion is the bounded-DCM rule calibrates the new
MLP's rule at the champion's α, as `rating-models train` does (`rating_models.calibration`):
the training rows rated by MLPs fitted without their fold, the validation rows by the new MLP,
with the voter's ratings (from the same out-of-fold outputs or stored predictions)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle, expert_alarms
from rating_models.calibration import CalibrationSet, mlp_out_of_fold, rule_choose
from rating_models.combine.mlp import MultimodalMLP
from rating_models.combine.voter import vote
from rating_models.ratings import Rating
from rating_models.risk import BoundedRule
from rating_models.stacking import OutOfFold, label_folds

EXPLICIT_LEVEL = Rating.X.level


def expert_opinions(
    bundle: Bundle,
    version: ModelVersion,
    items: Sequence[MediaItem],
    ids: Sequence[str | None],
    out_of_fold: OutOfFold | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the voter's class index (-1: it abstained) and whether some expert rated it
    X or XXX (the publishing guard), from the same outputs as the MLP's rows: out of fold
    where the item has them, else the version's stored prediction."""
    votes = np.full(len(items), -1, dtype=np.int64)
    alarms = np.zeros(len(items), dtype=bool)
    covered = [k for k, i in enumerate(ids) if i is not None]
    if covered and out_of_fold is not None:
        outputs = out_of_fold.rows([ids[k] for k in covered])
        ballots = np.stack([outputs[name].ratings for name in bundle.voter], axis=1)
        votes[covered] = vote(ballots)
        alarms[covered] = expert_alarms(outputs)
    rest = {items[k].pk: k for k, i in enumerate(ids) if i is None}
    stored = Prediction.objects.filter(model_version=version, item_id__in=rest)
    for item_id, level, experts in stored.values_list("item_id", "voter_rating", "experts"):
        if level is not None:
            votes[rest[item_id]] = Rating.parse(level).index
        alarms[rest[item_id]] = any(
            (said.get("rating") or 0) >= EXPLICIT_LEVEL for said in experts.values()
        )
    return votes, alarms


def rule_calibrate(
    mlp: MultimodalMLP,
    x: np.ndarray,
    y: np.ndarray,
    n_train: int,
    uids: Sequence[str],
    opinions: tuple[np.ndarray, np.ndarray],
    previous: BoundedRule,
    *,
    folds: int,
    seed: int,
) -> tuple[BoundedRule, CalibrationSet, dict[str, Any]]:
    """The new MLP's rule at the previous rule's α (and severe α). `opinions`: the voter's
    ratings and the explicit alarms (`expert_opinions`)."""
    fold = label_folds(y[:n_train], folds, seed=seed)
    config = dataclasses.asdict(mlp.config)
    held_out = mlp_out_of_fold(
        mlp.slots, config, x[:n_train], y[:n_train], fold, x[n_train:], y[n_train:]
    )
    calibration = CalibrationSet(
        list(uids),
        np.concatenate([held_out, mlp.predict_proba(x[n_train:])]),
        np.asarray(y, dtype=np.int64),
        *opinions,
    )
    rule, report = rule_choose(
        calibration,
        alpha=previous.alpha,
        severe_alpha=previous.severe_alpha,
        folds=folds,
        seed=seed,
    )
    return rule, calibration, report
