"""`{{ level|rating_label }}` and `{{ level|rating_class }}` for the review templates."""

from __future__ import annotations

from django import template

from moderation.review.queue import level_label

register = template.Library()


@register.filter
def rating_label(level: int | None) -> str:
    return level_label(level)


@register.filter
def rating_class(level: int | None) -> str:
    """The CSS class that colours a rating: `rating-pg` ... `rating-xxx`, `rating-blocked`."""
    if level is None:
        return "rating-none"
    return f"rating-{level_label(level).lower()}"


@register.filter
def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"
