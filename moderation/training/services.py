"""Retraining, evaluation and promotion of model versions.

A run goes through the stages `stages.ORDER` lists for its mode, in that order: data (the current
label of each train-split item; a validation part held out by a hash of the item id) -> experts
(full mode only) -> the experts' outputs -> MLP (or the recalibrated suggestion) -> saving ->
evaluation of the candidate and the champion on the same test items -> the gate -> promotion
(automatic or by an admin).
The MLP reads the image expert only once MIN_IMAGE_LABELS of the items it trains on have an
image; an MLP-only retrain reads the experts' outputs back through `features`. `candidates` makes
the candidate bundle for each mode; this module runs the stages around it and judges it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from moderation.inference import bundles, versions
from moderation.training import candidates, registry, selectors
from moderation.training.gate import evaluation_create, promotion_gate
from moderation.training.models import TrainedItem, TrainingRun
from moderation.training.runs import (
    TrainingCancelled,
    run_finish,
    run_progress,
    run_release_cancelled,
    training_runs_expire_stale,
)
from rating_models.bundle import new_version

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
    run_progress(
        run.pk, stage="data", progress=0.12, line=candidates.images_line(images, reads_images)
    )
    champion_bundle = bundles.bundle_for(champion)
    recalibration = run.mode == TrainingRun.Mode.RECALIBRATE
    if run.mode == TrainingRun.Mode.FULL:
        candidate_bundle, outputs = candidates.train_full(run, champion, fitted, held_out), None
    else:
        candidate_bundle, outputs = candidates.from_stored_outputs(
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

    test_examples = [candidates.labelled_example(i) for i in test_items]
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
