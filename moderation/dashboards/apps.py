from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "moderation.dashboards"
    label = "dashboards"
    verbose_name = "Dashboards"
