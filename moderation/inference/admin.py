from django.contrib import admin

from moderation.audit.admin import ReadOnlyAdmin
from moderation.inference.models import ModelVersion, Prediction, RatingDispatch


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "status", "created_at", "promoted_at"]
    list_filter = ["status"]
    # The status changes through the Models page (promote, roll back, retire), which audits it.
    readonly_fields = ["version", "path", "manifest", "status", "created_at", "promoted_at"]


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):  # append-only: the database refuses changes too
    list_display = ["item", "model_version", "voter_rating", "mlp_rating", "suggested_rating"]
    list_filter = ["model_version", "suggested_rating"]
    readonly_fields = [f.name for f in Prediction._meta.fields]
    list_select_related = ["item", "model_version"]


@admin.register(RatingDispatch)
class RatingDispatchAdmin(ReadOnlyAdmin):
    # Written by ingestion, the sweep and the workers; a failed item is retried from the
    # moderation health page, which queues it again and audits the retry.
    list_display = ["item", "dispatched_at", "attempts", "failed_at", "failure"]
    list_filter = [("failed_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["item", "dispatched_at", "attempts", "failed_at", "failure"]
    list_select_related = ["item"]
