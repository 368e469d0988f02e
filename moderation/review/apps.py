from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "moderation.review"
    label = "review"
    verbose_name = "Review queue and labels"
