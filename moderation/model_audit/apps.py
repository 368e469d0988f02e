from django.apps import AppConfig


class ModelAuditConfig(AppConfig):
    name = "moderation.model_audit"
    label = "model_audit"
    verbose_name = "Model audit"
