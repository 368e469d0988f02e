from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrainingConfig(AppConfig):
    name = "moderation.training"
    label = "training"
    verbose_name = "Retraining, evaluation and promotion"

    def ready(self) -> None:
        from moderation.schedules import periodic_tasks_ensure

        post_migrate.connect(periodic_tasks_ensure, sender=self)
