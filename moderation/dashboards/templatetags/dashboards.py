"""Filters for the dashboards: rates, intervals, and whether to show the nav link."""

from __future__ import annotations

from datetime import timedelta

from django import template

from moderation.dashboards.decorators import is_admin

register = template.Library()


@register.filter
def is_dashboard_admin(user) -> bool:
    return is_admin(user)


@register.filter
def rate(value: float | None) -> str:
    """A rate as a percentage with one decimal (DCM rates are small): 0.0123 -> 1.2%."""
    # A missing figure reaches a filter as "" (the template engine's invalid value).
    return "—" if value in (None, "") else f"{100 * value:.1f}%"


@register.filter
def score(value: float | None) -> str:
    """Accuracy, F1 and the like with three decimals."""
    return "—" if value in (None, "") else f"{value:.3f}"


@register.filter
def interval(figures: dict | None, key: str) -> str:
    """The bootstrap interval of `key` in a model's figures, as "1.2–3.4%", or ""."""
    bounds = ((figures or {}).get("intervals") or {}).get(key)
    if not bounds:
        return ""
    low, high = bounds
    if key == "macro_f1":
        return f"{low:.3f}–{high:.3f}"
    return f"{100 * low:.1f}–{100 * high:.1f}%"


@register.filter
def get(mapping: dict | None, key: str):
    return (mapping or {}).get(key)


@register.filter
def age(delta: timedelta | None) -> str:
    """A duration in its largest sensible unit: 3 d 4 h, 5 h 12 min, 7 min."""
    if delta is None:
        return "—"
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
