from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "moderation.media"
    label = "media"
    verbose_name = "Media items and ingestion"
