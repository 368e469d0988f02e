"""WSGI entry point for gunicorn: `gunicorn moderation.wsgi`.

Each process loads the champion's bundle as it starts (WARM_CHAMPION=0 skips it), before it
takes a request, then loads a promotion's incoming bundle in the background while the worker
rates the queue with it (`moderation.training.warm`): no `/api/v1/rate/` call pays for a load.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation.settings")
application = get_wsgi_application()

if os.environ.get("WARM_CHAMPION", "1") == "1":
    from moderation.inference.bundles import champion_warm
    from moderation.training.warm import bundles_watch

    champion_warm()
    bundles_watch()
