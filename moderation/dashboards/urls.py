from django.urls import path

from moderation.dashboards import views

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
]
