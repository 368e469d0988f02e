from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "moderation.training"
    label = "training"
    verbose_name = "Retraining, evaluation and promotion"
