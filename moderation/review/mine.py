"""Reads for a moderator's own history: what became of each of their decisions (a label, a
second decision's verdict, an admin's adjudication, a gold score), and what an admin sees when
adjudicating two decisions that differ."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from moderation.review.models import Decision, ReviewTask
from moderation.review.queue import level_label

Kind = ReviewTask.Kind
Status = Decision.Status


@dataclass(frozen=True)
class Outcome:
    text: str
    tone: str  # "ok", "wait", "miss": how the history page colours it


def decision_list_mine(*, moderator: AbstractBaseUser) -> QuerySet[Decision]:
    return (
        Decision.objects.filter(moderator=moderator)
        .select_related("item")
        .order_by("-created_at", "-pk")
    )


def decision_outcomes(decisions: list[Decision]) -> dict[int, Outcome]:
    """What became of each decision, by decision id."""
    ids = [d.pk for d in decisions]
    tasks = list(
        ReviewTask.objects.filter(
            Q(pending_id__in=ids) | Q(answer_id__in=ids) | Q(closed_by_id__in=ids)
        ).select_related("closed_by", "item__gold")
    )
    superseded = set(
        Decision.objects.filter(pk__in=ids, labels__superseded_by__isnull=False).values_list(
            "pk", flat=True
        )
    )
    return {d.pk: _outcome(d, tasks, d.pk in superseded) for d in decisions}


def _outcome(decision: Decision, tasks: list[ReviewTask], superseded: bool) -> Outcome:
    mine = [t for t in tasks if decision.pk in (t.pending_id, t.answer_id, t.closed_by_id)]
    if decision.status == Status.GOLD:
        task = next((t for t in mine if t.kind == Kind.GOLD), None)
        settled = level_label(task.item.gold.level) if task else "—"
        if task is None or task.outcome == "hit":
            return Outcome(f"gold item: right (settled {settled})", "ok")
        return Outcome(f"gold item: {task.outcome} the settled {settled}", "miss")
    if decision.status == Status.CONFIRMS:
        return Outcome("kept the label on a second look", "ok")
    if decision.status == Status.FINAL:
        if superseded:
            return Outcome("became the label; relabelled since", "ok")
        return Outcome("became the label", "ok")
    adjudication = next((t for t in mine if t.kind == Kind.ADJUDICATION), None)
    if adjudication is not None:
        if adjudication.state != ReviewTask.State.DONE:
            return Outcome("differs from a second decision: an admin decides", "wait")
        final = adjudication.closed_by
        agreed = final is not None and final.level == decision.level
        return Outcome(
            f"adjudicated as {level_label(final.level if final else None)}",
            "ok" if agreed else "miss",
        )
    waiting = next((t for t in mine if t.pending_id == decision.pk), None)
    if waiting is None:
        return Outcome("waits", "wait")
    if waiting.state != ReviewTask.State.DONE:
        return Outcome(f"waits for a {waiting.get_kind_display()}", "wait")
    if waiting.outcome == "agreed":
        return Outcome("confirmed by a second decision", "ok")
    if waiting.outcome == "decided by an admin" and waiting.closed_by is not None:
        return Outcome(f"an admin decided {level_label(waiting.closed_by.level)}", "wait")
    return Outcome(waiting.outcome, "wait")


def adjudication_view(task: ReviewTask | None) -> dict | None:
    """For an admin holding an adjudication: the two decisions that differ, who made them."""
    if task is None or task.kind != Kind.ADJUDICATION:
        return None
    decisions = [
        d
        for d in Decision.objects.filter(pk__in=[task.pending_id, task.answer_id])
        .select_related("moderator")
        .order_by("created_at")
    ]
    return {"reason": task.reason, "decisions": decisions}
