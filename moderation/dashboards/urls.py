from django.urls import path

from moderation.dashboards import quality_views, views

app_name = "dashboards"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("trend.csv", views.trend_csv, name="trend_csv"),
    path("versions/<str:version>/", views.version_detail, name="version"),
    path("versions/<str:version>/matrix.csv", views.confusion_csv, name="confusion_csv"),
    path("health/", views.health, name="health"),
    path("health/days.csv", views.health_days_csv, name="health_days_csv"),
    path("health/moderators.csv", views.health_moderators_csv, name="health_moderators_csv"),
    path("health/failed/<uuid:uid>/retry/", views.health_retry, name="health_retry"),
    path("health/quality/items/", quality_views.quality_items, name="quality_items"),
    path(
        "health/quality/agreement.csv",
        quality_views.quality_agreement_csv,
        name="quality_agreement_csv",
    ),
    path(
        "health/quality/holds/<int:hold_id>/clear/",
        quality_views.quality_hold_clear,
        name="quality_hold_clear",
    ),
    path(
        "health/quality/holds/<int:hold_id>/second-look/",
        quality_views.quality_hold_send_back,
        name="quality_hold_send_back",
    ),
]
