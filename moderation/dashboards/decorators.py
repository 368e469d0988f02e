"""Who may open the dashboards: admins, not moderators (the review app's one definition)."""

from __future__ import annotations

from moderation.review.decorators import admin_required, is_admin

__all__ = ["admin_required", "is_admin"]
