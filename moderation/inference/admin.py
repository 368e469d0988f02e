from django.contrib import admin

from moderation.inference.models import ModelVersion, Prediction


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "status", "created_at", "promoted_at"]
    list_filter = ["status"]
    readonly_fields = ["version", "path", "manifest", "created_at", "promoted_at"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["item", "model_version", "voter_rating", "mlp_rating", "suggested_rating"]
    list_filter = ["model_version", "suggested_rating"]
    readonly_fields = [f.name for f in Prediction._meta.fields]
    list_select_related = ["item", "model_version"]
