"""Reads for retraining: which items and labels a run learns from and is judged on."""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from moderation.inference.models import ModelVersion
from moderation.media.models import MediaItem, Split
from moderation.review.labels import current_level
from moderation.review.models import Label
from moderation.training.gate import needs_admin_why
from moderation.training.models import Promotion, TrainingRun
from moderation.training.stages import DONE, NAMES, ORDER, stage_name
from rating_models.ratings import Rating

RATING_LEVELS = [r.level for r in Rating]
VALIDATION_SHARE = 15  # percent of training items held out for early stopping


def item_list_labelled(*, split: str) -> QuerySet[MediaItem]:
    """Items of a split whose current label is a rating, annotated `current_level`.

    Blocked labels are decisions, not ratings, and unlabelled items teach nothing: both are
    left out, and so are purged items (no content left) and items a correction superseded
    (their labels describe the old content; the correction is labelled on its own). The split
    is the item's, fixed when it was created, so a test item can never be selected for
    training however it was labelled.
    """
    return (
        MediaItem.objects.filter(split=split, purged_at__isnull=True, superseded_by__isnull=True)
        .annotate(current_level=current_level())
        .filter(current_level__in=RATING_LEVELS)
        .order_by("pk")
    )


def training_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TRAIN)


def test_items() -> QuerySet[MediaItem]:
    return item_list_labelled(split=Split.TEST)


def validation_bucket(uid: UUID | str) -> int:
    """0-99 from a hash of the item's uid: below VALIDATION_SHARE, held out."""
    return int(hashlib.sha256(f"{uid}/validation".encode()).hexdigest(), 16) % 100


def is_validation(uid: UUID | str) -> bool:
    """Whether a training item is held out for early stopping (chosen by a hash of its uid,
    so an item is on the same side in every run)."""
    return validation_bucket(uid) < VALIDATION_SHARE


def validation_split(uids: list[UUID | str]) -> list[bool]:
    """Which of these training items are held out: `is_validation`'s share, and at least one
    when there are two or more (a few dozen items can all hash above the share: 2% of 24
    items do), the one nearest the cut, so that early stopping always has rows."""
    held = [is_validation(uid) for uid in uids]
    if len(uids) > 1 and not any(held):
        held[min(range(len(uids)), key=lambda k: validation_bucket(uids[k]))] = True
    return held


def training_images() -> dict[str, Any]:
    """How many labelled training items have an image, how many of those a retrain fits on
    (the rest are held out for early stopping), and whether that is enough for the MLP to
    read the image expert (MIN_IMAGE_LABELS)."""
    uids = training_items().exclude(image="").values_list("uid", flat=True)
    labelled = fitted = 0
    for uid in uids.iterator(chunk_size=10_000):
        labelled += 1
        fitted += not is_validation(uid)
    return {
        "labelled": labelled,
        "fitted": fitted,
        "minimum": min_image_labels(),
        "mlp_reads_images": fitted >= min_image_labels(),
    }


def min_image_labels() -> int:
    """MIN_IMAGE_LABELS, at least 1 (the library's lower bound: 0 reads images from the first)."""
    return max(1, settings.MIN_IMAGE_LABELS)


def mlp_reads(version: ModelVersion | None) -> list[str] | None:
    """The experts the version's MLP reads, as its manifest records them; None when it does
    not (a bundle made before the MLP kept track: it reads every expert that speaks)."""
    if version is None:
        return None
    reads = ((version.manifest or {}).get("stacking") or {}).get("mlp_reads")
    return list(reads) if isinstance(reads, list) else None


def labels_fingerprint(items: list[MediaItem]) -> str:
    """A digest of exactly what a run learns from or is judged on: items and their labels."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.uid}:{item.current_level}\n".encode())
    return digest.hexdigest()


def new_training_label_count(*, since) -> int:
    """Moderators' labels on training-split items written after `since` (None: ever)."""
    labels = Label.objects.filter(item__split=Split.TRAIN, moderator__isnull=False)
    if since is not None:
        labels = labels.filter(created_at__gt=since)
    return labels.count()


# -- runs as the pages show them ---------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """What a run is or came to, in one phrase (`words`), and the one line that explains it
    where a line is needed (`why`): the only status the run page and the runs list show."""

    key: str  # queued, running, cancelled, failed, promoting, promoted, waiting, refused, ...
    words: str
    why: str = ""


def training_run_status(run: TrainingRun, promotion: Promotion | None = None) -> RunStatus:
    """The run's status in plain words. A finished run's status is its candidate's fate:
    promoted, being promoted, waiting for an admin, refused by the gate, retired. `promotion`:
    the candidate's latest promotion, if any."""
    State = TrainingRun.State
    if run.state == State.QUEUED:
        return RunStatus("queued", "Queued, waiting for a worker")
    if run.state == State.RUNNING:
        return RunStatus("running", "Running")
    if run.state == State.CANCELLED:
        return RunStatus("cancelled", "Cancelled, stopping" if run.active else "Cancelled")
    if run.state == State.FAILED:
        return RunStatus("failed", "Failed", run.reason)
    gate = run.gate or {}
    candidate = run.candidate
    if candidate is None:  # a finished run always has one; a database edited by hand may not
        return RunStatus("finished", "Finished", run.reason)
    if candidate.promoted_at is not None:
        if gate.get("passed"):
            return RunStatus("promoted", "Finished, promoted")
        return RunStatus("promoted", "Finished, promoted by an admin over the gate's refusal")
    if promotion is not None and promotion.is_active:
        return RunStatus("promoting", "Finished, being promoted")
    if candidate.status == ModelVersion.Status.RETIRED:
        return RunStatus("retired", "Finished, not promoted: retired")
    if promotion is not None and promotion.state == Promotion.State.FAILED:
        return RunStatus(
            "promotion-failed", "Finished, not promoted: its promotion failed", promotion.error
        )
    if not gate.get("passed"):
        failed = [c["name"] for c in gate.get("checks", []) if not c["passed"]]
        why = f"worse than allowed on {' and '.join(failed)}" if failed else ""
        return RunStatus("refused", "Finished, not promoted: the gate refused it", why)
    if needs_admin_why(gate):  # the run page's banner says how few
        return RunStatus(
            "waiting",
            "Finished, waiting for an admin: too few explicit test items to promote alone",
        )
    return RunStatus(
        "waiting",
        "Finished, waiting for an admin to promote it",
        "it passed the gate; automatic promotion is off",
    )


def _with_status(runs: list[TrainingRun]) -> list[TrainingRun]:
    """Each run with `status` (RunStatus) and `stage_name`, in two queries for any number."""
    candidates = [run.candidate_id for run in runs if run.candidate_id]
    latest: dict[int, Promotion] = {}
    for promotion in Promotion.objects.filter(
        version_id__in=candidates, kind=Promotion.Kind.PROMOTE
    ).order_by("created_at", "pk"):
        latest[promotion.version_id] = promotion  # the latest one stays
    for run in runs:
        run.status = training_run_status(run, latest.get(run.candidate_id))
        run.stage_name = stage_name(run.stage)
    return runs


def training_run_list(*, limit: int) -> list[TrainingRun]:
    """The latest runs, newest first, each with its `status` and `stage_name`."""
    runs = TrainingRun.objects.select_related("started_by", "candidate", "base_version")
    return _with_status(list(runs[:limit]))


def training_run_get(*, pk: int) -> TrainingRun:
    """One run with its `status` and `stage_name`; 404 when there is none."""
    runs = TrainingRun.objects.select_related("started_by", "candidate", "base_version")
    return _with_status([get_object_or_404(runs, pk=pk)])[0]


def run_stage_list(run: TrainingRun) -> list[dict[str, str]]:
    """The stages of the run's mode in the order it goes through them, each "done",
    "current", "next", or "stopped" (where a failed or cancelled run stopped)."""
    stages = ORDER[run.mode]
    if run.stage == DONE or run.state == TrainingRun.State.SUCCEEDED:
        reached = len(stages)
    elif run.stage in stages:
        reached = stages.index(run.stage)
    else:
        reached = 0 if not run.stage else len(stages)
    stopped = run.state in (TrainingRun.State.FAILED, TrainingRun.State.CANCELLED)
    rows = []
    for k, key in enumerate(stages):
        if k < reached:
            state = "done"
        elif k == reached and run.stage:
            state = "stopped" if stopped else "current"
        else:
            state = "next"
        rows.append({"key": key, "name": NAMES[key], "state": state})
    return rows


# -- how long a run takes ----------------------------------------------------------------------

TIMED_RUNS = 3  # the estimate is the median of this many latest runs of the mode


def training_duration_estimate(*, mode: str) -> str:
    """How long a run of this mode takes, from the queueing to the verdict, as the latest
    finished runs of the mode took (their median), in words: "about 4 min, from the last 3
    runs"."""
    finished = TrainingRun.objects.filter(
        mode=mode, state=TrainingRun.State.SUCCEEDED, finished_at__isnull=False
    ).order_by("-finished_at")[:TIMED_RUNS]
    seconds = [(run.finished_at - run.created_at).total_seconds() for run in finished]
    if not seconds:
        return "no run yet to time it by"
    runs = "the last run" if len(seconds) == 1 else f"the last {len(seconds)} runs"
    return f"{duration_words(statistics.median(seconds))}, from {runs}"


def duration_words(seconds: float) -> str:
    """A duration as an admin would say it: "under a minute", "about 4 min", "about 2 h"."""
    if seconds < 60:
        return "under a minute"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    hours = seconds / 3600
    return f"about {hours:.1f} h".replace(".0 h", " h")
