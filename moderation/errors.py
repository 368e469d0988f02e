"""The error pages: 403, 404, 500 and a refused form (CSRF), in the site's layout, each with a
sentence that says what happened and a way back. Paths under /api/ keep the API's one error
shape (`{"error": ..., "field": null}`), as its clients parse nothing else.

Wired in moderation/urls.py (handler403, handler404, handler500) and settings.py
(CSRF_FAILURE_VIEW).
"""

from __future__ import annotations

import logging

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseServerError,
    JsonResponse,
)
from django.shortcuts import render
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme

from moderation.review.decorators import is_moderator

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
# What a visitor still gets when even the 500 template cannot be rendered.
PLAIN_500 = (
    "<!doctype html><title>Server error</title><h1>Something went wrong on our side</h1>"
    '<p>Try again in a moment. <a href="/">Back to the review page</a></p>'
)


def _api_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message, "field": None}, status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error("you do not have permission to perform this action", 403)
    # The reasons our views give are written for the person refused ("this page is for
    # admins"); Django's own PermissionDenied carries none.
    user = getattr(request, "user", None)  # None when refused before the auth middleware
    context = {
        "reason": str(exception or ""),
        "request_path": request.path,
        "can_review": user is not None and is_moderator(user),
    }
    return render(request, "403.html", context, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error(f"no API endpoint at {request.path}", 404)
    return render(request, "404.html", {"request_path": request.path}, status=404)


def server_error(request: HttpRequest | None = None) -> HttpResponse:
    """Rendered without the request: its context processors read the session and the user
    from the database, which may be what failed."""
    if request is not None and request.path.startswith(API_PREFIX):
        return _api_error("server error: it has been logged", 500)
    try:
        return HttpResponseServerError(loader.get_template("500.html").render())
    except Exception:  # the page that says something broke must not break itself
        log.exception("the 500 page could not be rendered")
        return HttpResponseServerError(PLAIN_500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without a valid CSRF token: most often a page left open past the
    session's end, or signed out in another tab. Reloading the page gives a fresh token."""
    back = request.META.get("HTTP_REFERER", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    context = {"back": back if safe else "", "request_path": request.path}
    body = loader.render_to_string("403_csrf.html", context, request)
    return HttpResponseForbidden(body)
