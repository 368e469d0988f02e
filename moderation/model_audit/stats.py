"""What the model audits found: per rating level and per model, the champion's hits and misses
against the admins' audit decisions.

The truth is the audit decision's level (Blocked is above every rating). For each level L of
R, X and XXX the question is binary: did the model rate the item L or above, and is it L or
above? So TP: both; FP: the model only; FN: the truth only; TN: neither. Each model is scored
on the prediction the item was sampled on: the suggested rating, the voter's, the MLP's and
every expert's. An abstention (an expert that could not rate the item, a voter with no vote)
is left out of that model's counts and counted apart.

Precision is TP / (TP + FP), recall TP / (TP + FN), each with its 95% Wilson interval. A
sample is not the stream: a triggered session holds only items the champion rated R or above,
so it measures the suggestion's precision and says nothing of its recall; a near-miss session
measures what the champion missed just below R.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import binomtest

from moderation.model_audit.models import AuditSample, AuditSession
from moderation.model_audit.sampling import AUDITED

LEVELS = (4, 8, 16)  # R, X, XXX: the thresholds scored
COMBINERS = ("suggested", "voter", "mlp")


@dataclass(frozen=True)
class AuditRow:
    """One audited item: the truth and every model's rating (None: abstained)."""

    uid: str
    session_id: int
    mode: str
    version: str
    auditor: str
    truth: int
    suggested: int | None
    voter: int | None
    mlp: int | None
    experts: dict[str, int | None]

    def rating(self, model: Model) -> int | None:
        if model.kind == "expert":
            return self.experts.get(model.name)
        return getattr(self, model.name)


@dataclass(frozen=True)
class Model:
    kind: str  # "combiner" or "expert"
    name: str

    @property
    def label(self) -> str:
        return {"suggested": "Suggested", "voter": "Voter", "mlp": "MLP"}.get(self.name, self.name)


@dataclass(frozen=True)
class Rate:
    value: float
    low: float
    high: float
    k: int
    n: int


def wilson(k: int, n: int) -> Rate | None:
    """k of n with its 95% Wilson interval; None when n is 0 (nothing to estimate)."""
    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Rate(k / n, float(ci.low), float(ci.high), k, n)


@dataclass(frozen=True)
class Counts:
    model: Model
    level: int
    tp: int
    fp: int
    tn: int
    fn: int
    abstained: int

    @property
    def precision(self) -> Rate | None:
        return wilson(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> Rate | None:
        return wilson(self.tp, self.tp + self.fn)

    @property
    def scored(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


def audit_rows(*, session: AuditSession | None = None, mode: str = "") -> list[AuditRow]:
    """Every audited item (of one session, or of one mode's sessions, or of all), oldest
    first. Skipped and purged samples have no decision: they are not rows."""
    samples = AuditSample.objects.filter(task__outcome=AUDITED, task__closed_by__isnull=False)
    if session is not None:
        samples = samples.filter(session=session)
    if mode:
        samples = samples.filter(session__mode=mode)
    samples = samples.select_related(
        "session",
        "task__item",
        "task__closed_by__moderator",
        "prediction__model_version",
    ).order_by("task__closed_at", "pk")
    rows = []
    for sample in samples:
        prediction, decision = sample.prediction, sample.task.closed_by
        rows.append(
            AuditRow(
                uid=str(sample.task.item.uid),
                session_id=sample.session_id,
                mode=sample.session.mode,
                version=prediction.model_version.version,
                auditor=decision.moderator.get_username() if decision.moderator else "",
                truth=decision.level,
                suggested=prediction.suggested_rating,
                voter=prediction.voter_rating,
                mlp=prediction.mlp_rating,
                experts={
                    str(name): (verdict or {}).get("rating")
                    for name, verdict in (prediction.experts or {}).items()
                },
            )
        )
    return rows


def audit_models(rows: Iterable[AuditRow]) -> list[Model]:
    """The combiners, then every expert named in any row, by name."""
    experts = sorted({name for row in rows for name in row.experts})
    return [Model("combiner", name) for name in COMBINERS] + [
        Model("expert", name) for name in experts
    ]


def level_counts(rows: Sequence[AuditRow], model: Model, level: int) -> Counts:
    tp = fp = tn = fn = abstained = 0
    for row in rows:
        rated = row.rating(model)
        if rated is None:
            abstained += 1
            continue
        said, true = rated >= level, row.truth >= level  # Blocked (32) is above every level
        if said and true:
            tp += 1
        elif said:
            fp += 1
        elif true:
            fn += 1
        else:
            tn += 1
    return Counts(model, level, tp, fp, tn, fn, abstained)


def audit_counts(rows: Sequence[AuditRow]) -> list[Counts]:
    """For every model, the counts at R, X and XXX, in that order."""
    return [level_counts(rows, model, level) for model in audit_models(rows) for level in LEVELS]
