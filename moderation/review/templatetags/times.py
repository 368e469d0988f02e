"""`{{ when|ago }}` and `{{ since|age }}`: how long ago, in words, without "0 minutes".

Django's `timesince` says "0 minutes" for anything under a minute (and for a time a moment
ahead, from clocks a little apart), so `{{ x|timesince }} ago` read "0 minutes ago".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

MINUTE = timedelta(minutes=1)


def _under_a_minute(value: datetime, now: datetime) -> bool:
    return now - value < MINUTE


@register.filter
def ago(value: datetime | None) -> str:
    """When, in words: "just now" under a minute, else "5 minutes ago", "2 hours, 5 minutes
    ago"."""
    if not value:
        return ""
    now = timezone.now()
    return "just now" if _under_a_minute(value, now) else f"{timesince(value, now)} ago"


@register.filter
def age(value: datetime | None) -> str:
    """How old something is: "under a minute", else "5 minutes", "2 hours, 5 minutes"."""
    if not value:
        return ""
    now = timezone.now()
    return "under a minute" if _under_a_minute(value, now) else timesince(value, now)
