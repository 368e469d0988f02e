"""Training a bundle: experts out of fold, then on all data, then the MLP on their outputs.

Stages, in order: configuration, data, experts (for each: its out-of-fold outputs over the
training items, k fits, then one fit on all of them with val for early stopping), features
(every expert predicts val), MLP (on the out-of-fold outputs of the training items, val for
early stopping), optional evaluation on a test split, save.

The voter's panel is ranked by each expert's out-of-fold macro-F1: where an even number of
experts speak on an item, the weakest of them sits out (`combine.voter`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rating_models.bundle import Bundle, expert_alarms
from rating_models.calibration import CalibrationSet, items_check, mlp_out_of_fold, rule_choose
from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.combine.voter import rank_by, vote
from rating_models.config import PRESETS, BundleConfig, ConfigError
from rating_models.examples import Example, fingerprint, rated
from rating_models.experts import Expert, ExpertOutput, build_expert
from rating_models.metrics import rating_report
from rating_models.stacking import OutOfFold, assign_folds, out_of_fold

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "BundleConfig", "ConfigError", "train_bundle"]


def train_bundle(
    train: Sequence[Example],
    val: Sequence[Example],
    *,
    config: BundleConfig,
    out: str | Path | None = None,
    test: Sequence[Example] | None = None,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
    computed: OutOfFold | None = None,
    prototypes: dict[str, Expert] | None = None,
) -> Bundle:
    """Train every expert, then the MLP on their out-of-fold outputs; save to `out` if given.

    `on_stage` hears each stage as it begins: "experts", then "expert:<name>" before each
    expert, "features", "mlp", and with test data "evaluation"; then "save" with `out`.
    `computed`: out-of-fold outputs made earlier for these training items (by `select`, over
    the same data); an expert found there is not fitted k times again. `prototypes`: untrained
    experts made earlier with the same settings (by `select`), whose frozen parts are reused.
    """
    stage = on_stage or (lambda name: log.info("stage: %s", name))
    config.validate()
    train, val = rated(train), rated(val)
    if not train or not val:
        raise ConfigError("training needs rated examples in both the training and validation set")
    if config.suggested == "bounded":  # refused now, not after the experts' minutes of fitting
        try:
            items_check(len(train) + len(val), alpha=config.alpha, folds=config.folds)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    counts = Counter(e.rating.label for e in train)
    log.info(
        "training a bundle: %d train items %s, %d validation items, experts %s",
        len(train),
        dict(sorted(counts.items())),
        len(val),
        [e["name"] for e in config.experts],
    )
    ids = [e.id for e in train]
    reused = computed.rows(ids) if computed is not None else {}

    stage("experts")
    folds = assign_folds(train, config.folds, seed=config.seed)
    experts: dict[str, Expert] = {}
    oof: dict[str, ExpertOutput] = {}
    reports: dict[str, Any] = {}
    for spec in config.experts:
        stage(f"expert:{spec['name']}")
        prototype = (prototypes or {}).get(spec["name"]) or build_expert(
            spec["name"], spec["kind"], spec.get("config")
        )
        prototype.prepare([*train, *val], progress=progress)
        if spec["name"] in reused:
            oof[prototype.name] = reused[prototype.name]
        else:
            oof[prototype.name] = out_of_fold(
                prototype, train, folds, early_stopping=val, progress=progress, seed=config.seed
            )
        expert = prototype.fresh()
        reports[expert.name] = expert.fit(train, val, progress=progress)
        experts[expert.name] = expert

    stage("features")
    val_outputs = {n: e.predict(val) for n, e in experts.items()}
    y_train = np.array([e.rating.index for e in train])
    y_val = np.array([e.rating.index for e in val])
    scores = out_of_fold_scores(oof, y_train)
    images = sum(e.image is not None for e in train)
    unread = unread_images(
        {n: e.modality for n, e in experts.items()}, images, config.min_image_labels
    )
    if unread:
        log.info(
            "%d labelled training images (MLP reads images from %d): the MLP does not read %s",
            images,
            config.min_image_labels,
            unread,
        )

    stage("mlp")
    mlp = MultimodalMLP(
        [ExpertSlot(n, e.modality, e.feature_size) for n, e in experts.items()],
        MLPConfig(**config.mlp),
    )
    x_train = mlp.inputs(silenced(oof, unread))
    x_val = mlp.inputs(silenced(val_outputs, unread))
    reports["mlp"] = mlp.fit(x_train, y_train, x_val, y_val, progress=progress)

    voter = rank_by({n: s["macro_f1"] for n, s in scores.items()}, config.voter_members)
    rule, calibration, calibration_report = None, None, None
    if config.suggested == "bounded":
        stage("calibration")
        probs = mlp_out_of_fold(mlp.slots, config.mlp, x_train, y_train, folds, x_val, y_val)
        calibration = CalibrationSet(
            [*ids, *(e.id for e in val)],
            np.concatenate([probs, mlp.predict_proba(x_val)]),
            np.concatenate([y_train, y_val]),
            np.concatenate([_votes(oof, voter), _votes(val_outputs, voter)]),
            np.concatenate([expert_alarms(oof), expert_alarms(val_outputs)]),
        )
        rule, calibration_report = rule_choose(
            calibration,
            alpha=config.alpha,
            severe_alpha=config.severe_alpha,
            folds=config.folds,
            seed=config.seed,
        )
    bundle = Bundle(experts, voter, mlp, config.suggested, rule=rule)
    bundle.out_of_fold = OutOfFold(ids, oof)
    bundle.calibration = calibration
    bundle.manifest = {
        "training_data": {
            "fingerprint": fingerprint(train),
            "validation_fingerprint": fingerprint(val),
            "n_train": len(train),
            "n_val": len(val),
            "n_images": images,
            "class_counts": dict(sorted(counts.items())),
        },
        "training": reports,
        "config": config.describe(),
        "stacking": {
            "folds": config.folds,
            "reused_from_selection": sorted(n for n in reused if n in experts),
            "out_of_fold_scores": scores,
            "mlp_reads": mlp.trained,
        },
        "selection": config.selection,
        "calibration": calibration_report,
        "test_metrics": None,
    }
    if test is not None:
        stage("evaluation")
        from rating_models.evaluation import evaluate_bundle

        report = evaluate_bundle(bundle, test, progress=progress, calibration=bundle.calibration)
        bundle.manifest["test_metrics"] = report
        bundle.manifest["test_data"] = {"fingerprint": fingerprint(rated(test)), "n": report["n"]}
    if out is not None:
        stage("save")
        bundle.save(out)
    return bundle


def _votes(outputs: dict[str, ExpertOutput], members: Sequence[str]) -> np.ndarray:
    """The voter's class index per item (-1 where every member abstained)."""
    return vote(np.stack([outputs[name].ratings for name in members], axis=1))


def image_experts(experts: dict[str, Expert]) -> list[str]:
    return [name for name, expert in experts.items() if expert.modality == "image"]


def unread_images(modalities: dict[str, str], images: int, minimum: int) -> list[str]:
    """The experts the MLP must not read: the image experts (by modality, name -> modality),
    while fewer than `minimum` training items have an image."""
    return [] if images >= minimum else [n for n, m in modalities.items() if m == "image"]


def silenced(outputs: dict[str, ExpertOutput], names: Sequence[str]) -> dict[str, ExpertOutput]:
    """The outputs with the named experts abstaining on every item."""
    quiet = dict(outputs)
    for name in names:
        out = outputs[name]
        quiet[name] = ExpertOutput.empty(len(out.abstain), out.features.shape[1])
    return quiet


def out_of_fold_scores(outputs: dict[str, ExpertOutput], labels: np.ndarray) -> dict[str, Any]:
    """Each expert's macro-F1 and DCM rate over the items it spoke on, out of fold."""
    scores = {}
    for name, out in outputs.items():
        spoke = ~out.abstain
        if not spoke.any():
            scores[name] = {"n": 0, "macro_f1": 0.0, "dcm_rate": None}
            continue
        report = rating_report(labels[spoke], out.ratings[spoke])
        scores[name] = {
            "n": int(spoke.sum()),
            "macro_f1": round(report["macro_f1"], 4),
            "dcm_rate": round(report["dcm_rate"], 4),
        }
    return scores
