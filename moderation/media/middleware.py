"""A database outage answers 503 with Retry-After instead of a logged 500.

The API answers its one error shape (`{"error": ..., "field": null}`) so that clients retry;
an upload retried after the outage finds the same item (items are deduplicated by content).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
MESSAGE = "the database is unavailable; retry later"


class DatabaseUnavailableMiddleware:
    """Last in MIDDLEWARE, so that its process_exception sees what the views raise first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.error("database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"error": MESSAGE, "field": None}, status=503)
        else:
            response = HttpResponse(unavailable_page(), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def unavailable_page() -> str:
    """The site's 503 page, rendered without the request: its context processors would read the
    session and the user from the database that failed."""
    try:
        return loader.get_template("503.html").render({"retry_after": RETRY_AFTER_SECONDS})
    except Exception:  # the page that says something broke must not break itself
        log.exception("the 503 page could not be rendered")
        return f"<h1>Service unavailable</h1><p>{MESSAGE.capitalize()}.</p>"
