"""How a training run makes its candidate bundle, by mode: a full retrain trains the experts
and the MLP; an MLP retrain trains a new MLP on the champion's experts' outputs (the out-of-fold
ones its bundle keeps, stored predictions for the rest); a recalibration calibrates the
champion's bounded suggestion again at the run's α and trains nothing. Each reports its stages
through `runs.run_progress`; `services` runs them and judges the result.
"""

from __future__ import annotations

import dataclasses
import logging

from moderation.inference import bundles
from moderation.inference import services as inference
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.training import bounded, features, selectors
from moderation.training.features import stored_outputs
from moderation.training.models import TrainingRun
from moderation.training.runs import run_progress
from rating_models.bundle import Bundle
from rating_models.calibration import CalibrationSet, read_calibration, recalibrated
from rating_models.combine.mlp import MLPConfig, MultimodalMLP
from rating_models.examples import Example
from rating_models.experts import ExpertOutput
from rating_models.ratings import Rating
from rating_models.stacking import OutOfFold, read_out_of_fold
from rating_models.train import BundleConfig, image_experts, train_bundle

log = logging.getLogger(__name__)


def from_stored_outputs(
    run: TrainingRun,
    champion: ModelVersion,
    bundle: Bundle,
    fitted: list[MediaItem],
    held_out: list[MediaItem],
    test_items: list[MediaItem],
    *,
    reads_images: bool,
) -> tuple[Bundle, dict[str, ExpertOutput]]:
    """An MLP retrain or a recalibration: the candidate keeps the champion's experts, so the
    MLP learns from their stored outputs, and both versions are judged on the stored outputs
    for the test items (returned) instead of running every expert over the test split twice.
    Every output missing is predicted first, before anything is trained: the stages run in the
    order the run page shows."""
    recalibration = run.mode == TrainingRun.Mode.RECALIBRATE
    calibration = _champion_calibration(champion, bundle) if recalibration else None
    run_progress(run.pk, stage="features", progress=0.15, line="loading the experts' outputs")
    out_of_fold = _champion_out_of_fold(run, champion, bundle)
    # A recalibration trains nothing: only the test items' outputs are needed.
    items = [] if recalibration else [*fitted, *held_out]
    ids = features.out_of_fold_ids(out_of_fold, items)
    unstored = [i for i, k in zip(items, ids, strict=True) if k is None]
    _predict_missing(run, champion, [*unstored, *test_items], progress=0.2)
    outputs = stored_outputs(bundle, champion, test_items)
    if calibration is not None:
        return _recalibrate(run, bundle, calibration, out_of_fold), outputs
    candidate = _train_mlp(
        run,
        champion,
        bundle,
        fitted,
        held_out,
        out_of_fold=out_of_fold,
        ids=ids,
        reads_images=reads_images,
    )
    return candidate, outputs


def _champion_calibration(champion: ModelVersion, bundle: Bundle) -> CalibrationSet:
    """The calibration items of the champion's bounded suggestion; a champion without them
    cannot be recalibrated, which is said before any work is done."""
    calibration = read_calibration(bundles.bundle_path(champion))
    if calibration is None or bundle.rule is None:
        raise RuntimeError(
            f"the champion {champion.version} keeps no calibration items for its bounded "
            "suggestion: retrain it (experts and MLP) with the bounded suggestion first"
        )
    return calibration


def _recalibrate(
    run: TrainingRun,
    bundle: Bundle,
    calibration: CalibrationSet,
    out_of_fold: OutOfFold | None,
) -> Bundle:
    """The champion's bundle with its bounded suggestion calibrated again at the run's α, on
    the calibration items it keeps: no expert and no MLP is trained."""
    run_progress(
        run.pk,
        stage="calibration",
        progress=0.3,
        line=f"recalibrating at α = {run.alpha:.1%} on {len(calibration)} calibration items",
    )
    candidate = recalibrated(
        bundle, calibration, alpha=run.alpha, severe_alpha=bundle.rule.severe_alpha
    )
    candidate.out_of_fold = out_of_fold
    rule = candidate.rule
    run_progress(
        run.pk,
        stage="calibration",
        progress=0.6,
        line=f"threshold {rule.effective_threshold:.4f}, voter floor "
        f"{'on' if rule.voter_floor else 'off'}",
    )
    return candidate


def images_line(images: int, reads_images: bool) -> str:
    minimum = selectors.min_image_labels()
    if reads_images:
        return (
            f"{images} training items have an image, at least MIN_IMAGE_LABELS ({minimum}): "
            "the MLP reads images"
        )
    return (
        f"{images} training items have an image, fewer than MIN_IMAGE_LABELS ({minimum}): the "
        "MLP does not read the image expert, which speaks through the voter"
    )


def labelled_example(item: MediaItem) -> Example:
    return dataclasses.replace(inference.item_example(item), label=Rating.parse(item.current_level))


def train_full(
    run: TrainingRun, champion: ModelVersion, fitted: list[MediaItem], held_out: list[MediaItem]
) -> Bundle:
    config = {k: v for k, v in (champion.manifest.get("config") or {}).items() if v}
    config["min_image_labels"] = selectors.min_image_labels()
    bundle_config = BundleConfig.from_preset("fast", config)
    names = [spec["name"] for spec in bundle_config.experts]
    run_progress(run.pk, stage="experts", progress=0.15, line="training experts and MLP")

    later = {
        "features": (0.55, "the experts' outputs on the validation items"),
        "mlp": (0.6, "training the MLP on the experts' out-of-fold outputs"),
    }

    def heard(stage: str) -> None:
        # The experts take most of a full retrain: each moves the bar from 0.15 towards 0.55.
        if stage.startswith("expert:"):
            name = stage.removeprefix("expert:")
            done = names.index(name) if name in names else 0
            progress = 0.15 + 0.4 * done / max(1, len(names))
            run_progress(run.pk, stage="experts", progress=progress, line=f"training expert {name}")
        elif stage in later:
            progress, line = later[stage]
            run_progress(run.pk, stage=stage, progress=progress, line=line)

    return train_bundle(
        [labelled_example(i) for i in fitted],
        [labelled_example(i) for i in held_out],
        config=bundle_config,
        on_stage=heard,
    )


def _train_mlp(
    run: TrainingRun,
    champion: ModelVersion,
    bundle: Bundle,
    fitted: list[MediaItem],
    held_out: list[MediaItem],
    *,
    out_of_fold: OutOfFold | None,
    ids: list[str | None],
    reads_images: bool,
) -> Bundle:
    """A new MLP on the champion's experts' outputs (`features`): the out-of-fold outputs its
    bundle keeps for the items they were trained on (`ids`: where each item is in them), the
    stored predictions for the others, never in-sample ones (but for a bundle without
    out-of-fold outputs: a warning says so). The experts stay as they are; the image expert's
    columns stay empty unless `reads_images`."""
    items = [*fitted, *held_out]
    unread = [] if reads_images else image_experts(bundle.experts)
    mlp = MultimodalMLP(bundle.mlp.slots, MLPConfig(**dataclasses.asdict(bundle.mlp.config)))
    x, y = features.mlp_rows(mlp, bundle, champion, items, ids, out_of_fold, unread=unread)
    n, from_oof = len(fitted), sum(k is not None for k in ids)
    run_progress(
        run.pk,
        stage="mlp",
        progress=0.4,
        line=f"training the MLP on {n} rows ({len(held_out)} validation): {from_oof} rows from "
        f"the champion's out-of-fold outputs, {len(items) - from_oof} from stored predictions",
    )
    report = mlp.fit(x[:n], y[:n], x[n:], y[n:])
    run_progress(
        run.pk,
        stage="mlp",
        progress=0.65,
        line=f"MLP: best epoch {report['best_epoch']}, validation loss {report['best_val_loss']}, "
        f"reads {', '.join(mlp.trained or []) or 'no expert'}",
    )
    rule, calibration, calibration_report = None, None, None
    if bundle.rule is not None:  # a bounded suggestion: the new MLP gets its own rule
        run_progress(run.pk, stage="mlp", progress=0.67, line="calibrating the bounded rule")
        opinions = bounded.expert_opinions(bundle, champion, items, ids, out_of_fold)
        folds = int((champion.manifest.get("config") or {}).get("folds") or 5)
        rule, calibration, calibration_report = bounded.rule_calibrate(
            mlp, x, y, n, [str(i.uid) for i in items], opinions, bundle.rule, folds=folds, seed=1234
        )
    candidate = Bundle(bundle.experts, bundle.voter, mlp, bundle.suggested, rule=rule)
    candidate.out_of_fold = out_of_fold  # the same experts: their outputs carry forward
    candidate.calibration = calibration
    manifest = champion.manifest or {}
    candidate.manifest = {
        "config": {
            **(manifest.get("config") or {}),
            "min_image_labels": selectors.min_image_labels(),
        },
        "stacking": {
            **(manifest.get("stacking") or {}),
            "mlp_reads": mlp.trained,
            "mlp_rows": {"out_of_fold": from_oof, "stored": len(items) - from_oof},
        },
        "calibration": calibration_report,
    }
    return candidate


def _champion_out_of_fold(
    run: TrainingRun, champion: ModelVersion, bundle: Bundle
) -> OutOfFold | None:
    """The experts' out-of-fold outputs the champion's bundle keeps; None, with a warning in
    the run's log, when it has none that fit its experts."""
    out_of_fold = read_out_of_fold(bundles.bundle_path(champion))
    problem = features.out_of_fold_problem(out_of_fold, bundle.mlp.slots)
    if problem is None:
        return out_of_fold
    log.warning("training run %s: %s", run.pk, problem)
    run_progress(run.pk, stage="features", progress=0.17, line=f"warning: {problem}")
    return None


def _predict_missing(
    run: TrainingRun, champion: ModelVersion, items: list[MediaItem], *, progress: float
) -> None:
    """Predict with the champion the items it has no stored prediction (features) for yet."""
    wanted = [i.pk for i in items]
    stored = set(
        Prediction.objects.filter(
            model_version=champion, item_id__in=features.among(wanted)
        ).values_list("item_id", flat=True)
    )
    missing = [pk for pk in wanted if pk not in stored]
    if missing:
        run_progress(
            run.pk,
            stage="features",
            progress=progress,
            line=f"predicting {len(missing)} items that have no stored features yet",
        )
        inference.predictions_create(item_ids=missing, version=champion)
