from django.contrib import admin

from moderation.model_audit.models import AuditSample, AuditSession


@admin.register(AuditSession)
class AuditSessionAdmin(admin.ModelAdmin):
    list_display = ("pk", "mode", "admin", "size", "days", "margin", "created_at")
    list_filter = ("mode",)
    readonly_fields = ("admin", "mode", "size", "days", "margin", "created_at")


@admin.register(AuditSample)
class AuditSampleAdmin(admin.ModelAdmin):
    list_display = ("pk", "session", "task", "prediction", "gap")
    readonly_fields = ("session", "task", "prediction", "gap")
