"""The dashboards' tables as plain rows: one source for the HTML tables, the charts and the CSV.

A page and its CSV download never disagree because both read the rows built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moderation.dashboards.charts import Series
from moderation.dashboards.selectors import Health, report_figures, report_models
from moderation.inference.models import ModelVersion
from moderation.training.models import Evaluation
from rating_models.ratings import EXPLICIT, LABELS, MILD

MODEL_NAMES = {"suggested": "Suggested", "voter": "Voter", "mlp": "MLP"}
_SEVERE_TRUE = {r.index for r in EXPLICIT}
_SEVERE_PREDICTED = {r.index for r in MILD}


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


@dataclass(frozen=True)
class MetricRow:
    """One model of one version: its figures on the test split and on live labels."""

    version: ModelVersion
    model: str
    test: dict[str, Any] | None
    live: dict[str, Any] | None

    @property
    def name(self) -> str:
        return model_name(self.model)

    @property
    def is_combined(self) -> bool:
        return self.model in MODEL_NAMES


@dataclass(frozen=True)
class VersionBlock:
    version: ModelVersion
    evaluation: Evaluation | None
    live_n: int
    rows: list[MetricRow]


def version_blocks(
    versions: Sequence[ModelVersion],
    evaluations: dict[int, Evaluation],
    live: dict[int, dict[str, Any]],
) -> list[VersionBlock]:
    """Per version: a row per model (suggested, voter, MLP, experts) with test and live figures."""
    blocks = []
    for version in versions:
        evaluation = evaluations.get(version.pk)
        test_report = evaluation.report if evaluation else None
        live_report = live.get(version.pk)
        models = list(dict.fromkeys([*report_models(test_report), *report_models(live_report)]))
        rows = [
            MetricRow(
                version=version,
                model=model,
                test=report_figures(test_report, model),
                live=report_figures(live_report, model),
            )
            for model in models
        ]
        blocks.append(
            VersionBlock(
                version=version,
                evaluation=evaluation,
                live_n=live_report["n"] if live_report else 0,
                rows=rows,
            )
        )
    return blocks


def _interval(figures: dict[str, Any] | None, key: str) -> list[float | None]:
    interval = ((figures or {}).get("intervals") or {}).get(key)
    return list(interval) if interval else [None, None]


METRICS_HEADER = [
    "version",
    "status",
    "data",
    "model",
    "n",
    "accuracy",
    "macro_f1",
    "macro_f1_low",
    "macro_f1_high",
    "dcm_count",
    "dcm_rate",
    "dcm_rate_low",
    "dcm_rate_high",
    "severe_dcm_count",
    "explicit_support",
    "severe_dcm_rate",
    "severe_dcm_rate_low",
    "severe_dcm_rate_high",
]


def metrics_csv_rows(blocks: Sequence[VersionBlock]) -> list[list[Any]]:
    rows = []
    for block in blocks:
        for row in block.rows:
            for data, figures in (("test", row.test), ("live", row.live)):
                if figures is None:
                    continue
                get = figures.get
                rows.append(
                    [
                        block.version.version,
                        block.version.status,
                        data,
                        row.model,
                        get("n"),
                        get("accuracy"),
                        get("macro_f1"),
                        *_interval(figures, "macro_f1"),
                        get("dcm_count"),
                        get("dcm_rate"),
                        *_interval(figures, "dcm_rate"),
                        get("severe_dcm_count"),
                        get("explicit_support"),
                        get("severe_dcm_rate"),
                        *_interval(figures, "severe_dcm_rate"),
                    ]
                )
    return rows


# The outputs the product uses; the trend follows them and then every expert.
TREND_OUTPUTS = ("suggested", "voter", "mlp")


def trend_models(evaluations: Sequence[Evaluation]) -> list[str]:
    """The three outputs, then every expert that any of the evaluations reports, by name."""
    experts = {
        name
        for e in evaluations
        for name in (e.report or {}).get("models", {})
        if name not in TREND_OUTPUTS
    }
    return [*TREND_OUTPUTS, *sorted(experts)]


@dataclass(frozen=True)
class TrendPoint:
    evaluation: Evaluation
    figures: dict[str, dict[str, Any] | None]


def trend_points(evaluations: Sequence[Evaluation]) -> list[TrendPoint]:
    models = trend_models(evaluations)
    return [
        TrendPoint(
            evaluation=e,
            figures={model: report_figures(e.report, model) for model in models},
        )
        for e in evaluations
    ]


def trend_series(points: Sequence[TrendPoint], key: str) -> list[Series]:
    """One series per model of `key` over time: the suggestion solid, the voter, the MLP and
    each expert dashed."""
    models = list(points[0].figures) if points else []
    return [
        Series(
            name=model_name(model),
            values=[(p.figures.get(model) or {}).get(key) for p in points],
            dashed=model != "suggested",
        )
        for model in models
    ]


TREND_HEADER = [
    "evaluated_at",
    "data",
    "version",
    "status",
    "model",
    "n",
    "explicit_support",
    "dcm_count",
    "dcm_rate",
    "severe_dcm_count",
    "severe_dcm_rate",
]


def trend_csv_rows(points: Sequence[TrendPoint]) -> list[list[Any]]:
    rows = []
    for point in points:
        e = point.evaluation
        for model, figures in point.figures.items():
            if figures is None:
                continue
            rows.append(
                [
                    e.created_at.isoformat(),
                    e.data,
                    e.model_version.version,
                    e.model_version.status,
                    model,
                    figures.get("n"),
                    figures.get("explicit_support"),
                    figures.get("dcm_count"),
                    figures.get("dcm_rate"),
                    figures.get("severe_dcm_count"),
                    figures.get("severe_dcm_rate"),
                ]
            )
    return rows


@dataclass(frozen=True)
class Cell:
    predicted: str
    count: int
    kind: str  # "hit" on the diagonal, "dcm" below it (true higher), "up" above it
    severe: bool
    shade: float  # 0-1, the count relative to the row's total


def matrix_rows(matrix: Sequence[Sequence[int]]) -> list[tuple[str, list[Cell], int]]:
    """(true label, cells, row total) for a 5×5 matrix whose rows are true, columns predicted."""
    rows = []
    for t, counts in enumerate(matrix):
        total = sum(counts)
        cells = [
            Cell(
                predicted=LABELS[p],
                count=int(count),
                kind="hit" if p == t else ("dcm" if p < t else "up"),
                severe=t in _SEVERE_TRUE and p in _SEVERE_PREDICTED,
                shade=round(count / total, 3) if total else 0.0,
            )
            for p, count in enumerate(counts)
        ]
        rows.append((LABELS[t], cells, total))
    return rows


def matrix_csv_rows(matrix: Sequence[Sequence[int]]) -> list[list[Any]]:
    header = ["true \\ predicted", *LABELS]
    return [header, *([LABELS[t], *counts] for t, counts in enumerate(matrix))]


HEALTH_DAYS_HEADER = ["day", "labels"]
HEALTH_MODERATORS_HEADER = [
    "moderator",
    "labels",
    "blocked",
    "voter_known",
    "voter_corrected",
    "voter_correction_rate",
    "mlp_known",
    "mlp_corrected",
    "mlp_correction_rate",
]


def health_days_csv_rows(health: Health) -> list[list[Any]]:
    return [[day.isoformat(), n] for day, n in health.labels_per_day]


def health_moderators_csv_rows(health: Health) -> list[list[Any]]:
    return [
        [
            m.username,
            m.labels,
            m.blocked,
            m.voter_known,
            m.voter_corrected,
            m.voter_correction_rate,
            m.mlp_known,
            m.mlp_corrected,
            m.mlp_correction_rate,
        ]
        for m in health.moderators
    ]
