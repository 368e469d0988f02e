from django.contrib import admin
from django.http import HttpRequest

from moderation.audit.models import AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and what the workers write: shown in the admin, never added, changed or deleted
    there (append-only history is refused by the database too)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: audit rows are append-only (the database refuses changes too)."""

    list_display = ["at", "actor", "action", "item", "model_version", "old", "new", "reason"]
    list_filter = ["action"]
    search_fields = ["item__uid", "actor__username", "reason"]
    list_select_related = ["actor", "item", "model_version"]
    date_hierarchy = "at"
