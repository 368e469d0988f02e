"""Decisions and labels in the admin: to read, never to change. Both are append-only (the
database refuses UPDATE and DELETE); a correction is made on the review page."""

from django.contrib import admin

from moderation.audit.admin import ReadOnlyAdmin
from moderation.review.models import Decision, Label


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item", "moderator", "origin", "path", "status", "level"]
    list_filter = ["status", "path", "level"]
    search_fields = ["item__uid", "moderator__username"]
    list_select_related = ["item", "moderator"]


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item", "level", "moderator", "origin", "supersedes"]
    list_filter = ["level", "origin"]
    search_fields = ["item__uid", "moderator__username"]
    list_select_related = ["item", "moderator"]
