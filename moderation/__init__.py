"""The moderation product: a Django project that rates media with `rating_models` bundles."""

from moderation.celery import app as celery_app

__all__ = ["celery_app"]
