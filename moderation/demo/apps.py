from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "moderation.demo"
    label = "demo"
    verbose_name = "The one-command demo (`make demo`)"
