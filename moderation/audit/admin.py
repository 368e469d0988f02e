from django.contrib import admin
from django.http import HttpRequest

from moderation.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit rows are append-only (the database refuses changes too)."""

    list_display = ["at", "actor", "action", "item", "model_version", "old", "new", "reason"]
    list_filter = ["action"]
    search_fields = ["item__uid", "actor__username", "reason"]
    list_select_related = ["actor", "item", "model_version"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
