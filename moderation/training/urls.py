from django.urls import path

from moderation.training import views

app_name = "training"

urlpatterns = [
    path("", views.training_runs, name="runs"),
    path("start/", views.training_start, name="start"),
    path("recalibrate/", views.training_recalibrate, name="recalibrate"),
    path("label-errors/", views.label_errors_find, name="label_errors"),
    path("runs/<int:pk>/", views.training_run, name="run"),
    path("runs/<int:pk>/cancel/", views.training_cancel, name="cancel"),
    path("versions/", views.model_versions, name="versions"),
    path("versions/<int:pk>/promote/", views.model_version_promote, name="promote"),
    path("versions/<int:pk>/rollback/", views.model_version_rollback, name="rollback"),
    path("versions/<int:pk>/retire/", views.model_version_retire, name="retire"),
    path("promotion/", views.promotion_panel, name="promotion"),
]
