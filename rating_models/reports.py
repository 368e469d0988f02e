"""Readable tables of evaluation reports, for the command line and BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from rating_models.ratings import LABELS


def format_report(
    report: dict[str, Any], title: str = "all items", *, markdown: bool = False
) -> str:
    render = markdown_table if markdown else table
    lines = [f"{title}: {report['n']} rated items", ""]
    lines += render(_models_rows(report))
    if report.get("voter_panel_sizes"):
        sizes = ", ".join(f"{n} by {k}" for k, n in report["voter_panel_sizes"].items())
        lines += ["", f"items voted by how many experts: {sizes}"]
    if "per_class" in report:
        policy = report.get("suggestion_policy", "max")
        lines += ["", f"suggested rating ({policy}) per class:", ""]
        lines += render(_per_class_rows(report))
        lines += ["", "confusion (rows true, columns predicted):", ""]
        lines += render(
            [("true \\ predicted", *LABELS)]
            + [(LABELS[i], *map(str, row)) for i, row in enumerate(report["confusion"])]
        )
    if report.get("automation"):
        lines += ["", automation_line(report["automation"])]
    if report.get("tradeoff"):
        lines += ["", TRADEOFF_TITLE, ""]
        lines += render(_tradeoff_rows(report["tradeoff"]))
    for key, groups in report.items():
        if key.startswith("by_"):
            for value, group in groups.items():
                lines += ["", format_report(group, f"{key[3:]} = {value}", markdown=markdown)]
    return "\n".join(lines)


TRADEOFF_TITLE = (
    "DCM against over-rating by α (the rule recalibrated at each α on the bundle's "
    "calibration items; * is the bundle's own):"
)


def automation_line(figures: dict[str, Any]) -> str:
    """One sentence: how much the rule publishes unreviewed, and the DCM among those items."""
    if not figures["published"]:
        return "published without a moderator: none"
    severe = figures.get("severe_dcm_rate")
    return (
        f"published without a moderator: {figures['share']:.1%} of items "
        f"({figures['published']}); DCM rate among them {figures['dcm_rate']:.2%}"
        + ("" if severe is None else f", severe DCM rate {severe:.2%}")
    )


def _tradeoff_rows(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out = [("α", "threshold", "DCM rate", "severe DCM rate", "over-rating rate", "published")]
    for row in rows:
        out.append(
            (
                f"{row['alpha']:.0%}" + (" *" if row["chosen"] else ""),
                fmt(row["threshold"]),
                fmt(row["dcm_rate"]),
                fmt(row["severe_dcm_rate"]),
                fmt(row["over_rating_rate"]),
                fmt(row.get("automation_share")),
            )
        )
    return out


def _models_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("model", "n", "accuracy", "macro-F1", "DCM", "DCM rate", "severe DCM", "severe rate")]
    models = dict(report.get("models", {}))
    if "per_class" in report:
        models["suggested"] = report
    for name, m in models.items():
        ci = m.get("intervals") or {}
        rows.append(
            (
                name,
                str(m["n"]),
                fmt(m["accuracy"]),
                fmt(m["macro_f1"], ci.get("macro_f1")),
                str(m["dcm_count"]),
                fmt(m["dcm_rate"], ci.get("dcm_rate")),
                f"{m['severe_dcm_count']}/{m['explicit_support']}",
                fmt(m["severe_dcm_rate"], ci.get("severe_dcm_rate")),
            )
        )
    return rows


def _per_class_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("rating", "support", "precision", "recall", "F1")]
    for label, m in report["per_class"].items():
        rows.append((label, str(m["support"]), fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"])))
    return rows


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in rows
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def markdown_table(rows: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(row) + " |" for row in rows]
    out.insert(1, "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|")
    return out


def fmt(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "—"
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
