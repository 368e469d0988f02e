"""The Celery app. Tasks are routed: `inference` and `training` to GPU workers, the rest to
`default` (settings.CELERY_TASK_ROUTES)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation.settings")

app = Celery("moderation")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
