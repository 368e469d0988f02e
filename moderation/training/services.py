"""Retraining, evaluation and promotion of model versions.

A run goes through the stages `stages.ORDER` lists for its mode, in that order: data (the current
label of each train-split item; a validation part held out by a hash of the item id) -> experts
(full mode only) -> the experts' outputs -> MLP (or the recalibrated suggestion) -> saving ->
evaluation of the candidate and the champion on the same test items -> the gate -> promotion
(automatic or by an admin).
The MLP reads the image expert only once MIN_IMAGE_LABELS of the items it trains on have an
image; an MLP-only retrain reads the experts' outputs back through `features`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from moderation.inference import bundles, versions
from moderation.inference import services as inference
from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from moderation.training import bounded, features, registry, selectors
from moderation.training.features import stored_outputs
from moderation.training.gate import evaluation_create, promotion_gate
from moderation.training.models import TrainedItem, TrainingRun
from moderation.training.runs import (
    TrainingCancelled,
    run_finish,
    run_progress,
    run_release_cancelled,
    training_runs_expire_stale,
)
from rating_models.bundle import Bundle, new_version
from rating_models.calibration import CalibrationSet, read_calibration, recalibrated
from rating_models.combine.mlp import MLPConfig, MultimodalMLP
from rating_models.examples import Example
from rating_models.experts import ExpertOutput
from rating_models.ratings import Rating
from rating_models.stacking import OutOfFold, read_out_of_fold
from rating_models.train import BundleConfig, image_experts, train_bundle

log = logging.getLogger(__name__)

State = TrainingRun.State


# -- the run itself --------------------------------------------------------------------------


def training_run_execute(*, run_id: int) -> TrainingRun:
    """Train, evaluate and judge a candidate. Any failure leaves the champion untouched."""
    updated = TrainingRun.objects.filter(pk=run_id, state=State.QUEUED).update(
        state=State.RUNNING, heartbeat_at=timezone.now()
    )
    if not updated:
        # Delivered again: the run finished, was cancelled, or its worker was killed and the
        # broker handed the message on. A killed run, its heartbeat stopped, is failed here;
        # no run is ever executed twice.
        training_runs_expire_stale()
        return TrainingRun.objects.get(pk=run_id)
    run = TrainingRun.objects.get(pk=run_id)
    try:
        with _heartbeat(run_id):
            _execute(run)
    except TrainingCancelled:
        pass
    except Exception as error:
        log.exception("training run %s failed", run_id)
        run_finish(run_id, State.FAILED, f"{type(error).__name__}: {error}")
    finally:
        run_release_cancelled(run_id)
    return TrainingRun.objects.get(pk=run_id)


@contextlib.contextmanager
def _heartbeat(run_id: int) -> Iterator[None]:
    """Beat from a thread while the run works: one stage (an expert's training) may outlast
    TRAINING_STALE_MINUTES, and only a run whose worker died must look stale."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.TRAINING_HEARTBEAT_SECONDS):
                try:
                    TrainingRun.objects.filter(pk=run_id, active=True).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as error:  # the next beat tries again
                    log.warning("training run %s: heartbeat not written: %s", run_id, error)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"training-run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _execute(run: TrainingRun) -> None:
    champion = bundles.champion()
    if champion is None:
        raise RuntimeError("there is no champion to retrain from")
    run_progress(run.pk, stage="data", progress=0.05, line="selecting labelled items")
    train_items = selectors.training_items()
    if run.mode == TrainingRun.Mode.MLP:
        # Stored features stand for prompts and images; the ids find out-of-fold outputs.
        train_items = train_items.only("uid", "external_id", "image")
    train_items = list(train_items)
    test_items = list(selectors.test_items())
    if not train_items or not test_items:
        raise RuntimeError(
            f"need labelled items in both splits (train {len(train_items)}, test {len(test_items)})"
        )
    TrainingRun.objects.filter(pk=run.pk).update(
        n_train=len(train_items),
        n_test=len(test_items),
        training_fingerprint=selectors.labels_fingerprint(train_items),
        test_fingerprint=selectors.labels_fingerprint(test_items),
    )
    validation = selectors.validation_split([i.uid for i in train_items])
    held_out = [i for i, v in zip(train_items, validation, strict=True) if v]
    fitted = [i for i, v in zip(train_items, validation, strict=True) if not v]
    run_progress(
        run.pk,
        stage="data",
        progress=0.1,
        line=f"{len(fitted)} training, {len(held_out)} validation, {len(test_items)} test items",
    )
    images = sum(bool(i.image) for i in fitted)
    reads_images = images >= selectors.min_image_labels()
    run_progress(run.pk, stage="data", progress=0.12, line=_images_line(images, reads_images))
    champion_bundle = bundles.bundle_for(champion)
    recalibration = run.mode == TrainingRun.Mode.RECALIBRATE
    if run.mode == TrainingRun.Mode.FULL:
        candidate_bundle, outputs = _train_full(run, champion, fitted, held_out), None
    else:
        candidate_bundle, outputs = _from_stored_outputs(
            run, champion, champion_bundle, fitted, held_out, test_items, reads_images=reads_images
        )

    run_progress(run.pk, stage="saving", progress=0.7, line="saving the candidate")
    # Named by its own version: run ids restart with every database, bundle versions do not.
    version = new_version()
    candidate_bundle.manifest = {**candidate_bundle.manifest, "version": version}
    path = Path(settings.BUNDLE_DIR) / version
    candidate_bundle.save(
        path,
        extra={
            "training_run": run.pk,
            "base_version": champion.version,
            "training_data": {
                "fingerprint": selectors.labels_fingerprint(train_items),
                "n_train": len(fitted),
                "n_val": len(held_out),
                "n_images": images,
            },
        },
    )
    candidate = versions.model_version_register(path=path)
    TrainingRun.objects.filter(pk=run.pk).update(candidate=candidate)
    # What it learned from, so that its live figures leave those items out: a recalibration
    # learnt nothing new, and keeps the champion's MLP with what it learned from.
    if recalibration:
        learned = list(champion.trained_items.values_list("item_id", flat=True))
    else:
        learned = [i.pk for i in train_items]
    TrainedItem.objects.bulk_create(
        (TrainedItem(model_version=candidate, item_id=pk) for pk in learned),
        batch_size=5000,
        ignore_conflicts=True,
    )

    test_examples = [_labelled_example(i) for i in test_items]
    run_progress(run.pk, stage="evaluation", progress=0.75, line="evaluating the candidate")
    candidate_eval = evaluation_create(version=candidate, examples=test_examples, outputs=outputs)
    run_progress(run.pk, stage="evaluation", progress=0.85, line="evaluating the champion")
    champion_eval = evaluation_create(version=champion, examples=test_examples, outputs=outputs)

    run_progress(run.pk, stage="gate", progress=0.95, line="judging the candidate")
    gate = promotion_gate(
        candidate=candidate_eval.report,
        champion=champion_eval.report,
        alpha=candidate_bundle.rule.alpha if recalibration else None,
    )
    TrainingRun.objects.filter(pk=run.pk).update(gate=gate)
    promote = gate["passed"] and not gate["needs_admin"] and settings.AUTO_PROMOTE
    if promote:
        verdict = "promoting it: the candidate is no worse at down-class errors"
    elif gate["passed"] and gate["needs_admin"]:
        verdict = f"passed the gate; waiting for an admin to promote it: {gate['needs_admin']}"
    elif gate["passed"]:
        verdict = "passed the gate; waiting for an admin to promote it (automatic promotion off)"
    else:
        verdict = "refused: " + "; ".join(c["detail"] for c in gate["checks"] if not c["passed"])
    promotion = None
    with transaction.atomic():
        # The run's row is locked from here to the end: a cancel lands before the verdict,
        # and the candidate is never promoted, or after the run has finished.
        TrainingRun.objects.select_for_update().only("pk").get(pk=run.pk)
        if promote:
            try:
                promotion = registry.promotion_start(
                    version=candidate, reason="passed the gate", queue=False
                )
            except registry.PromotionRefused as refused:
                verdict = f"passed the gate; not promoted: {refused}"
        run_progress(run.pk, stage="done", progress=1.0, line=verdict)
        run_finish(run.pk, State.SUCCEEDED, verdict)
    if promotion is not None:
        # This worker brings it in as an admin's promotion does: the review queue rated
        # first, then the switch.
        promotion = registry.promotion_execute(promotion.pk)
        outcome = (
            "promoted: the candidate is no worse at down-class errors"
            if promotion.state == promotion.State.DONE
            else f"passed the gate, but its promotion failed: {promotion.error}"
        )
        TrainingRun.objects.filter(pk=run.pk).update(reason=outcome)


def _from_stored_outputs(
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


def _images_line(images: int, reads_images: bool) -> str:
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


def _is_validation(item: MediaItem) -> bool:
    return selectors.is_validation(item.uid)


def _labelled_example(item: MediaItem) -> Example:
    return dataclasses.replace(inference.item_example(item), label=Rating.parse(item.current_level))


def _train_full(
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
        [_labelled_example(i) for i in fitted],
        [_labelled_example(i) for i in held_out],
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
