from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "moderation.audit"
    label = "audit"
    verbose_name = "Audit trail"
