from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "moderation.inference"
    label = "inference"
    verbose_name = "Model versions and predictions"
